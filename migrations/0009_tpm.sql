-- Tokens per minute: a key may limit the tokens its requests take per
-- minute (NULL: unlimited). Its GCRA state lives beside the request
-- limit's in rate_limits, under the key id prefixed `tpm:`.
ALTER TABLE api_keys ADD COLUMN tpm INTEGER;
