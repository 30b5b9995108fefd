-- Every quota reservation holds a lease until its request is settled: if
-- the process serving it dies, the lease expires and the gateway settles
-- the request as abandoned, releasing the quota (crates/modelgate-core/src/
-- gateway/leases.rs). Written with the reservation, deleted by the
-- settlement, in the same transactions.
CREATE TABLE IF NOT EXISTS leases (
    request_id TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    model      TEXT NOT NULL,
    backend    TEXT NOT NULL,
    amount     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at);
