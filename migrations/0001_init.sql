-- ModelGate schema. Applied by the native/Lambda SQLite store (rusqlite) and
-- by `wrangler d1 migrations apply` alike; both record applied files in
-- d1_migrations. Times are milliseconds since the Unix epoch.

CREATE TABLE IF NOT EXISTS api_keys (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    prefix           TEXT NOT NULL,
    key_hash         TEXT NOT NULL UNIQUE,           -- SHA-256 hex; the key itself is never stored
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'revoked')),
    admin            INTEGER NOT NULL DEFAULT 0,
    rpm              INTEGER,                        -- NULL: the gateway default
    quota            INTEGER,                        -- NULL: unlimited
    quota_used       INTEGER NOT NULL DEFAULT 0,
    quota_reserved   INTEGER NOT NULL DEFAULT 0,     -- held by requests in flight
    last_reservation INTEGER NOT NULL DEFAULT 0,     -- what the latest reserve statement granted
    allowed_models   TEXT NOT NULL DEFAULT '[]',     -- JSON array
    allowed_ips      TEXT NOT NULL DEFAULT '[]',     -- JSON array
    default_model    TEXT,
    expires_at       INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_used_at     INTEGER
);

CREATE TABLE IF NOT EXISTS models (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    backend        TEXT NOT NULL CHECK (backend IN ('openai', 'api3', 'vllm', 'llamacpp', 'ollama')),
    base_url       TEXT NOT NULL,
    fallback_urls  TEXT NOT NULL DEFAULT '[]',       -- JSON array
    upstream_model TEXT NOT NULL,
    api_key        TEXT,                             -- upstream key; never returned by any API
    enabled        INTEGER NOT NULL DEFAULT 1,
    stream_usage   INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS usage_records (
    request_id        TEXT PRIMARY KEY,              -- one record per request, written once
    key_id            TEXT NOT NULL,
    model             TEXT NOT NULL,
    backend           TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    usage_reported    INTEGER NOT NULL,
    stream            INTEGER NOT NULL,
    error             TEXT,
    latency_ms        INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS usage_records_by_time ON usage_records (created_at);
CREATE INDEX IF NOT EXISTS usage_records_by_key_time ON usage_records (key_id, created_at);
