-- Leases live only while their request runs (a few rows), yet each was in
-- three b-trees (the table, its request-id index, its expiry index), so
-- every reservation and every settlement wrote three pages for it. Now the
-- table is its request-id index (WITHOUT ROWID) and the expiry sweep, every
-- 30 s, scans the few rows instead of keeping an index: one page each.
CREATE TABLE leases_by_request (
    request_id TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    model      TEXT NOT NULL,
    backend    TEXT NOT NULL,
    amount     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    money      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

INSERT INTO leases_by_request (request_id, key_id, model, backend, amount, created_at, expires_at, money)
    SELECT request_id, key_id, model, backend, amount, created_at, expires_at, money FROM leases;

DROP TABLE leases;

ALTER TABLE leases_by_request RENAME TO leases;
