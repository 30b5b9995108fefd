//! The GCRA statements D1 runs (`modelgate_sql::RATE_*`), on SQLite's
//! engine, which D1 is: a step with a cost, a first step held to the
//! window, refusals that store nothing, and tokens given back; and the
//! batch that steps a key's requests and reserves its quota in one round
//! trip.

use modelgate_core::limiter::{gcra_params, refund_us};
use modelgate_sql::{LEASE, RATE_REFUND, RATE_STEP, RESERVE_IF_STEPPED};
use modelgate_sqlite::MIGRATIONS;
use rusqlite::{Connection, OptionalExtension, params};

fn step(db: &Connection, subject: &str, per_minute: u32, cost: i64, now_us: i64) -> Option<i64> {
    let (interval, window) = gcra_params(per_minute);
    db.query_row(
        RATE_STEP,
        params![subject, now_us, interval * cost, window],
        |r| r.get(0),
    )
    .optional()
    .unwrap()
}

#[test]
fn steps_take_their_cost_and_refunds_give_it_back() {
    let db = Connection::open_in_memory().unwrap();
    db.execute_batch(include_str!("../../../migrations/0002_rate_limits.sql"))
        .unwrap();
    // 1,000 tokens a minute: a first request over the whole allowance is
    // refused and stores nothing.
    assert_eq!(step(&db, "tpm:k", 1000, 1001, 0), None);
    let stored: Option<i64> = db
        .query_row("SELECT tat FROM rate_limits", [], |r| r.get(0))
        .optional()
        .unwrap();
    assert_eq!(stored, None);
    // 600 then 400 fit; one more does not.
    assert_eq!(step(&db, "tpm:k", 1000, 600, 0), Some(36_000_000));
    assert_eq!(step(&db, "tpm:k", 1000, 400, 0), Some(60_000_000));
    assert_eq!(step(&db, "tpm:k", 1000, 1, 0), None);
    // 300 given back fit again, and no more.
    let back = db
        .execute(RATE_REFUND, params!["tpm:k", refund_us(1000, 300)])
        .unwrap();
    assert_eq!(back, 1);
    assert!(step(&db, "tpm:k", 1000, 300, 0).is_some());
    assert_eq!(step(&db, "tpm:k", 1000, 1, 0), None);
    // Requests are steps of one: 3 a minute.
    for _ in 0..3 {
        assert!(step(&db, "k", 3, 1, 0).is_some());
    }
    assert_eq!(step(&db, "k", 3, 1, 0), None);
}

/// The Worker's batch for `request` on key `key` (`rpm` a minute, tokens
/// `min` to `max`), in one transaction: whether the step allowed it, what
/// was reserved.
fn step_and_reserve(
    db: &mut Connection,
    key: &str,
    request: &str,
    rpm: u32,
    (min, max): (i64, i64),
) -> (bool, Option<i64>) {
    let (interval, window) = gcra_params(rpm);
    let tx = db.transaction().unwrap();
    let stepped: Option<i64> = tx
        .query_row(RATE_STEP, params![key, 0, interval, window], |r| r.get(0))
        .optional()
        .unwrap();
    let granted: Option<i64> = tx
        .query_row(
            RESERVE_IF_STEPPED,
            params![key, min, max, 0, 0, 0, 0],
            |r| r.get(0),
        )
        .optional()
        .unwrap();
    tx.execute(LEASE, params![request, key, "m", "vllm", 0, 60_000])
        .unwrap();
    tx.commit().unwrap();
    (stepped.is_some(), granted)
}

fn held(db: &Connection, key: &str) -> (i64, i64) {
    let reserved = db
        .query_row(
            "SELECT quota_reserved FROM api_keys WHERE id = ?1",
            [key],
            |r| r.get(0),
        )
        .unwrap();
    let leases = db
        .query_row(
            "SELECT COUNT(*) FROM leases WHERE key_id = ?1",
            [key],
            |r| r.get(0),
        )
        .unwrap();
    (reserved, leases)
}

#[test]
fn a_reservation_batched_after_a_rate_step_is_made_only_if_the_step_allowed() {
    let mut db = Connection::open_in_memory().unwrap();
    for (_, migration) in MIGRATIONS {
        db.execute_batch(migration).unwrap();
    }
    for (key, quota) in [("a", 100), ("b", 20)] {
        db.execute(
            "INSERT INTO api_keys (id, name, prefix, key_hash, quota, created_at, updated_at)
             VALUES (?1, ?1, ?1, ?1, ?2, 0, 0)",
            params![key, quota],
        )
        .unwrap();
    }
    // Two requests a minute: two reservations, each with its lease.
    assert_eq!(
        step_and_reserve(&mut db, "a", "r1", 2, (10, 30)),
        (true, Some(30))
    );
    assert_eq!(
        step_and_reserve(&mut db, "a", "r2", 2, (10, 30)),
        (true, Some(30))
    );
    assert_eq!(held(&db, "a"), (60, 2));
    // The third is refused by its rate and holds nothing, though the write
    // before it (the last lease) changed a row.
    assert_eq!(
        step_and_reserve(&mut db, "a", "r3", 2, (10, 30)),
        (false, None)
    );
    assert_eq!(held(&db, "a"), (60, 2));
    // Allowed by its rate, refused by the quota: no reservation, no lease,
    // and the request still counts against the rate (as when the steps are
    // taken one by one).
    assert_eq!(
        step_and_reserve(&mut db, "b", "r4", 1, (30, 40)),
        (true, None)
    );
    assert_eq!(held(&db, "b"), (0, 0));
    assert_eq!(
        step_and_reserve(&mut db, "b", "r5", 1, (1, 1)),
        (false, None)
    );
    assert_eq!(held(&db, "b"), (0, 0));
}
