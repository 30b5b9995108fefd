-- A key's own limits on some models: a JSON object of model name to
-- {"rpm", "tpm"} (NULL: none). Their GCRA state lives in rate_limits under
-- the key id and model name.
ALTER TABLE api_keys ADD COLUMN model_limits TEXT;
