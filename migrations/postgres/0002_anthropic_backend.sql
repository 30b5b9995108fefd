-- The anthropic backend: models.backend's CHECK names it.
ALTER TABLE models DROP CONSTRAINT IF EXISTS models_backend_check;
ALTER TABLE models ADD CONSTRAINT models_backend_check
    CHECK (backend IN ('openai', 'api3', 'vllm', 'llamacpp', 'ollama', 'anthropic'));
