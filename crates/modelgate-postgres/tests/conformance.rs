//! The store conformance suite against a real PostgreSQL server (one per
//! test, in its own data directory on a free port, stopped by the test),
//! plus what only a shared database shows: replicas migrating at once and
//! sharing one limit, and a database that cannot be reached.

use std::sync::Arc;

use modelgate_core::domain::NewKey;
use modelgate_core::error::StoreError;
use modelgate_core::ports::{Accounting, KeyStore, RateLimiter};
use modelgate_postgres::{Options, PgStore};
use modelgate_testkit::service::{Service, free_port};

fn url(pg: &Service) -> String {
    format!("{}/postgres?user=modelgate", pg.url("postgres"))
}

async fn fresh() -> Option<(PgStore, Service)> {
    let pg = Service::postgres()?;
    let store = PgStore::open(&url(&pg), Options::default()).await.unwrap();
    Some((store, pg))
}

modelgate_testkit::store_conformance!(guarded fresh().await);

async fn all<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Three replicas (pools of their own) starting at once on a new database
/// migrate it once between them, and their GCRA steps on one subject admit
/// exactly the allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_migrate_once_and_share_one_limit() {
    let Some(pg) = Service::postgres() else {
        return;
    };
    let starts = (0..3)
        .map(|_| {
            let url = url(&pg);
            tokio::spawn(async move {
                let s = PgStore::new(&url, Options::default()).unwrap();
                let applied = s.migrate().await.unwrap();
                (s, applied.len())
            })
        })
        .collect();
    let opened = all(starts).await;
    let applied: usize = opened.iter().map(|(_, n)| n).sum();
    assert_eq!(
        applied,
        modelgate_postgres::MIGRATIONS.len(),
        "each migration once"
    );
    let replicas: Vec<Arc<PgStore>> = opened.into_iter().map(|(s, _)| Arc::new(s)).collect();
    let now = 1_700_000_000_000;
    let steps = (0..60)
        .map(|i| {
            let s = Arc::clone(&replicas[i % 3]);
            tokio::spawn(async move { s.acquire("key_r", 10, 1, now).await.unwrap() })
        })
        .collect();
    let decisions = all(steps).await;
    let allowed = decisions.iter().filter(|d| d.allowed).count();
    assert_eq!(allowed, 10, "RPM 10 at one instant admits 10");
    let refused = decisions.iter().find(|d| !d.allowed).unwrap();
    assert!(refused.retry_after_ms > 0 && refused.retry_after_ms <= 6_000);
    // Tokens given back can be taken again; a cost over the whole
    // allowance is refused, on a fresh subject too.
    let s = &replicas[0];
    assert!(s.acquire("tpm", 100, 100, now).await.unwrap().allowed);
    assert!(!s.acquire("tpm", 100, 40, now).await.unwrap().allowed);
    s.refund("tpm", 100, 40, now).await.unwrap();
    assert!(s.acquire("tpm", 100, 40, now).await.unwrap().allowed);
    assert!(!s.acquire("fresh", 100, 101, now).await.unwrap().allowed);
}

/// A request's rate step with its reservation (one statement) on three
/// replicas at once: the RPM admits exactly its allowance, of those exactly
/// as many as the quota covers are granted, each with its lease, and a
/// request the rate refused reserves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_steps_carrying_reservations_hold_both_limits_exactly() {
    let Some((store, pg)) = fresh().await else {
        return;
    };
    let key = modelgate_testkit::conformance::key("key_f", Some(60));
    store.insert_key(NewKey { key }).await.unwrap();
    let replicas: Vec<Arc<PgStore>> = (0..3)
        .map(|_| Arc::new(PgStore::new(&url(&pg), Options::default()).unwrap()))
        .collect();
    modelgate_testkit::conformance::steps_carry_reservations(&replicas, "key_f", 1_700_000_000_000)
        .await;
    let held = store.get_key("key_f").await.unwrap().unwrap();
    assert_eq!(held.quota_reserved, 60);
    assert_eq!(store.leases(None).await.unwrap().len(), 6);
}

/// A database that cannot be reached is `Unavailable` (the gateway's
/// 503), and the error does not say where it is.
#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    let port = free_port();
    let opts = Options {
        connect_timeout: std::time::Duration::from_secs(2),
        ..Options::default()
    };
    let url = format!("postgres://modelgate:hunter2@127.0.0.1:{port}/postgres");
    let s = PgStore::new(&url, opts).unwrap();
    let e = s.acquire("k", 10, 1, 0).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    let text = format!("{e} {e:?} {s:?}");
    assert!(
        !text.contains(&port.to_string()) && !text.contains("hunter2"),
        "{text}"
    );
}
