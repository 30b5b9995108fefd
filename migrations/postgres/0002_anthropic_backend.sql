-- The anthropic backend: models.backend's CHECK names it; and how a model
-- serves /v1/messages (NULL: the backend's default).
ALTER TABLE models DROP CONSTRAINT IF EXISTS models_backend_check;
ALTER TABLE models ADD CONSTRAINT models_backend_check
    CHECK (backend IN ('openai', 'api3', 'vllm', 'llamacpp', 'ollama', 'anthropic'));
ALTER TABLE models ADD COLUMN messages_api TEXT CHECK (messages_api IN ('native', 'bridge'));
