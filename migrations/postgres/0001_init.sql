-- ModelGate on PostgreSQL: the schema SQLite and D1 reach through
-- migrations 0001-0010, in one step. Integers are BIGINT (booleans 0/1),
-- as in SQLite, so every store binds the same values.

CREATE TABLE IF NOT EXISTS api_keys (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    prefix                TEXT NOT NULL,
    key_hash              TEXT NOT NULL UNIQUE,      -- SHA-256 hex; the key itself is never stored
    status                TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'revoked')),
    admin                 BIGINT NOT NULL DEFAULT 0,
    rpm                   BIGINT,                    -- NULL: the gateway default
    tpm                   BIGINT,                    -- NULL: unlimited
    model_limits          TEXT,                      -- JSON: {model: {rpm, tpm}}
    quota                 BIGINT,                    -- NULL: unlimited
    quota_used            BIGINT NOT NULL DEFAULT 0,
    quota_reserved        BIGINT NOT NULL DEFAULT 0, -- held by requests in flight
    quota_period          TEXT NOT NULL DEFAULT 'none',
    quota_window          BIGINT NOT NULL DEFAULT 0,
    last_reservation      BIGINT NOT NULL DEFAULT 0, -- what the latest reserve statement granted
    budget_nanos          BIGINT,                    -- NULL: unlimited
    budget_used_nanos     BIGINT NOT NULL DEFAULT 0,
    budget_reserved_nanos BIGINT NOT NULL DEFAULT 0,
    budget_period         TEXT NOT NULL DEFAULT 'none',
    budget_window         BIGINT NOT NULL DEFAULT 0,
    last_money            BIGINT,
    allowed_models        TEXT NOT NULL DEFAULT '[]', -- JSON array
    allowed_ips           TEXT NOT NULL DEFAULT '[]', -- JSON array
    default_model         TEXT,
    expires_at            BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    last_used_at          BIGINT
);

CREATE TABLE IF NOT EXISTS models (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    backend        TEXT NOT NULL CHECK (backend IN ('openai', 'api3', 'vllm', 'llamacpp', 'ollama')),
    base_url       TEXT NOT NULL,
    fallback_urls  TEXT NOT NULL DEFAULT '[]',       -- JSON array
    upstream_model TEXT NOT NULL,
    api_key        TEXT,                             -- upstream key; never returned by any API
    enabled        BIGINT NOT NULL DEFAULT 1,
    stream_usage   BIGINT NOT NULL DEFAULT 1,
    responses_api  TEXT CHECK (responses_api IN ('native', 'bridge')),
    deployments    TEXT,
    prices         TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS usage_records (
    request_id        TEXT PRIMARY KEY,              -- one record per request, written once
    key_id            TEXT NOT NULL,
    model             TEXT NOT NULL,
    backend           TEXT NOT NULL,
    endpoint          TEXT,
    deployment        TEXT,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens     BIGINT NOT NULL DEFAULT 0,
    cost_nanos        BIGINT,
    status            BIGINT NOT NULL,
    usage_reported    BIGINT NOT NULL,
    stream            BIGINT NOT NULL,
    error             TEXT,
    latency_ms        BIGINT NOT NULL,
    created_at        BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS usage_records_by_time ON usage_records (created_at);
CREATE INDEX IF NOT EXISTS usage_records_by_key_time ON usage_records (key_id, created_at);

CREATE TABLE IF NOT EXISTS rate_limits (
    key_id TEXT PRIMARY KEY,
    tat    BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS leases (
    request_id TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    model      TEXT NOT NULL,
    backend    TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    money      BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at);

CREATE TABLE IF NOT EXISTS responses (
    id                   TEXT PRIMARY KEY,
    key_id               TEXT NOT NULL,
    model                TEXT NOT NULL,
    previous_response_id TEXT,
    input                TEXT NOT NULL,
    response             TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS responses_by_expiry ON responses (expires_at);
CREATE INDEX IF NOT EXISTS responses_by_key ON responses (key_id, created_at);
