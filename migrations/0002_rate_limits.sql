-- GCRA state per key for stores that limit in SQL (D1 on Workers): the
-- theoretical arrival time in microseconds, moved by one atomic statement
-- per request (see crates/modelgate-core/src/sql.rs, RATE_STEP).
CREATE TABLE IF NOT EXISTS rate_limits (
    key_id TEXT PRIMARY KEY,
    tat    INTEGER NOT NULL
);
