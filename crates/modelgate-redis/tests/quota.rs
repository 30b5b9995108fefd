//! Quota counters in a real redis-server (one per test, on a free loopback
//! port, stopped by the test) in front of a SQLite store.

use std::sync::Arc;
use std::time::Duration;

use modelgate_core::domain::{KeyPatch, NewKey};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{Accounting, KeyStore};
use modelgate_redis::RedisCounters;
use modelgate_sqlite::{Journal, Options, SqliteStore};
use modelgate_testkit::conformance::{key, lease, settlement};
use modelgate_testkit::service::{Service, free_port};
use modelgate_testkit::subject::Subject;

type Counted = Subject<SqliteStore, RedisCounters<SqliteStore>>;

/// SQLite with its counters in Redis.
fn counted(store: SqliteStore, redis: &Service) -> Counted {
    let store = Arc::new(store);
    let accounts = RedisCounters::new(Arc::clone(&store), &redis.url("redis")).unwrap();
    Subject::new(store, accounts)
}

fn fresh() -> Option<(Counted, Service)> {
    let redis = Service::redis()?;
    Some((counted(SqliteStore::in_memory().unwrap(), &redis), redis))
}

modelgate_testkit::store_conformance!(accounts fresh());

/// Two gateway instances, each with its own connection, sharing one Redis
/// and one SQLite file (the Lambda on EFS): 14 reservations of 7 in 100,
/// and what they charge adds up in both the counters and the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_sharing_redis_and_a_file_never_overspend() {
    let Some(redis) = Service::redis() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("mg-quota-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = || Options {
        journal: Journal::Delete,
        busy_timeout: Duration::from_secs(10),
        ..Options::default()
    };
    let db = dir.join("gw.db");
    let a = Arc::new(counted(SqliteStore::open(&db, opts()).unwrap(), &redis));
    let b = Arc::new(counted(SqliteStore::open(&db, opts()).unwrap(), &redis));
    a.insert_key(NewKey {
        key: key("key_m", Some(100)),
    })
    .await
    .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            tokio::spawn(async move {
                let got = s.reserve_quota(&lease("key_m"), 7, 7).await.unwrap();
                if got.is_some() {
                    s.settle(&settlement(&format!("r{i}"), "key_m", 7, 2, 3, 5))
                        .await
                        .unwrap();
                }
                got.unwrap_or(0)
            })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        granted += t.await.unwrap();
    }
    // Reservations are released as requests settle, so more than 14 fit.
    assert!(granted >= 98, "granted {granted}");
    let k = a.get_key("key_m").await.unwrap().unwrap();
    assert_eq!(k.quota_reserved, 0);
    assert_eq!(k.quota_used, granted / 7 * 5, "every request charged once");
    let stored = SqliteStore::open(&db, opts())
        .unwrap()
        .get_key("key_m")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.quota_used, k.quota_used,
        "the store agrees with the counters"
    );
    assert!(k.quota_used <= 100);
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}

/// A request's rate step with its reservation (one script) from two
/// instances at once, on a key whose counters are not in Redis yet: the
/// RPM admits exactly its allowance (rebuilding the counters took no
/// step), of those exactly as many as the quota covers are granted, each
/// with its lease, and a request the rate refused reserves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_steps_carrying_reservations_hold_both_limits_exactly() {
    let Some(redis) = Service::redis() else {
        return;
    };
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    store
        .insert_key(NewKey {
            key: key("key_f", Some(60)),
        })
        .await
        .unwrap();
    let instances: Vec<_> = (0..2)
        .map(|_| Arc::new(RedisCounters::new(Arc::clone(&store), &redis.url("redis")).unwrap()))
        .collect();
    modelgate_testkit::conformance::steps_carry_reservations(&instances, "key_f", 0).await;
    assert_eq!(instances[0].leases(None).await.unwrap().len(), 6);
    let k = store.get_key("key_f").await.unwrap().unwrap();
    let live = instances[1].live(vec![k]).await;
    assert_eq!(live[0].quota_reserved, 60);
}

/// Redis down: no reservation (the gateway answers 503), and the
/// settlement reports the error so it is retried; when a new, empty Redis
/// comes back, the counters are rebuilt from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_redis_refuses_then_rebuilds_from_the_store() {
    let Some(redis) = Service::redis() else {
        return;
    };
    let port = redis.port();
    let s = counted(SqliteStore::in_memory().unwrap(), &redis);
    s.insert_key(NewKey {
        key: key("key_r", Some(100)),
    })
    .await
    .unwrap();
    assert_eq!(
        s.reserve_quota(&lease("key_r"), 10, 10).await.unwrap(),
        Some(10)
    );
    s.settle(&settlement("r1", "key_r", 10, 20, 20, 5))
        .await
        .unwrap();
    drop(redis);
    assert!(matches!(
        s.reserve_quota(&lease("key_r"), 1, 1).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        s.settle(&settlement("r2", "key_r", 0, 1, 1, 6))
            .await
            .is_err()
    );
    let _redis = Service::redis_on(port);
    // r2 reached the store before Redis failed: the rebuilt counters have it.
    assert_eq!(
        s.reserve_quota(&lease("key_r"), 1, 100).await.unwrap(),
        Some(58)
    );
    let k = s.get_key("key_r").await.unwrap().unwrap();
    assert_eq!((k.quota_used, k.quota_reserved), (42, 58));
    // An admin reset reaches the counters at once.
    let reset = KeyPatch {
        quota_used: Some(0),
        ..KeyPatch::default()
    };
    s.update_key("key_r", reset, 7).await.unwrap();
    assert_eq!(
        s.reserve_quota(&lease("key_r"), 42, 42).await.unwrap(),
        Some(42)
    );
}
