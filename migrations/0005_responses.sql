-- Stored Responses (/v1/responses with store: true): the conversation
-- state previous_response_id and item_reference read back. The JSON is
-- kept as sent and answered; expired rows are unreadable at once and
-- deleted in small batches by the expiry index, never by a scan.
CREATE TABLE IF NOT EXISTS responses (
    id                   TEXT PRIMARY KEY,
    key_id               TEXT NOT NULL,
    model                TEXT NOT NULL,
    previous_response_id TEXT,
    input                TEXT NOT NULL,
    response             TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS responses_by_expiry ON responses (expires_at);
CREATE INDEX IF NOT EXISTS responses_by_key ON responses (key_id, created_at);
