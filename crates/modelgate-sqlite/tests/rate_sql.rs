//! The GCRA statements D1 runs (`modelgate_sql::RATE_*`), on SQLite's
//! engine, which D1 is: a step with a cost, a first step held to the
//! window, refusals that store nothing, and tokens given back.

use modelgate_core::limiter::{gcra_params, refund_us};
use modelgate_sql::{RATE_REFUND, RATE_STEP};
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
