-- The anthropic backend: models.backend's CHECK names it. SQLite (and D1)
-- cannot alter a CHECK, so the table is rebuilt with the same columns in
-- the same order (nothing references it, and it has no other index), and
-- messages_api: how a model serves /v1/messages (NULL: the backend's
-- default).
CREATE TABLE models_new (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    backend        TEXT NOT NULL CHECK (backend IN ('openai', 'api3', 'vllm', 'llamacpp', 'ollama', 'anthropic')),
    base_url       TEXT NOT NULL,
    fallback_urls  TEXT NOT NULL DEFAULT '[]',       -- JSON array
    upstream_model TEXT NOT NULL,
    api_key        TEXT,                             -- upstream key; never returned by any API
    enabled        INTEGER NOT NULL DEFAULT 1,
    stream_usage   INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    responses_api  TEXT CHECK (responses_api IN ('native', 'bridge')),
    deployments    TEXT,
    prices         TEXT,
    messages_api   TEXT CHECK (messages_api IN ('native', 'bridge'))
);
INSERT INTO models_new (id, name, backend, base_url, fallback_urls, upstream_model, api_key, enabled,
                        stream_usage, created_at, updated_at, responses_api, deployments, prices)
    SELECT id, name, backend, base_url, fallback_urls, upstream_model, api_key, enabled,
           stream_usage, created_at, updated_at, responses_api, deployments, prices
    FROM models;
DROP TABLE models;
ALTER TABLE models_new RENAME TO models;
