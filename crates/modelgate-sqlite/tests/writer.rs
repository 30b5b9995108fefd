//! The group-commit writer: a job that fails inside a batch fails alone,
//! and leaves nothing half-done. On a rollback journal every job goes through
//! the writer thread's batches; on WAL, callers also commit inline.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use modelgate_core::domain::NewKey;
use modelgate_core::ports::{Accounting, KeyStore};
use modelgate_sqlite::{Journal, Options, SqliteStore};
use modelgate_testkit::conformance::{key, settlement};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_job_fails_alone_and_half_of_it_is_rolled_back() {
    for journal in [Journal::Delete, Journal::Wal] {
        fails_alone(journal).await;
    }
}

/// A fresh store file in its own folder, with the unlimited key `key_w`.
async fn store(name: &str, journal: Journal) -> (Arc<SqliteStore>, PathBuf) {
    store_with(name, journal, Options::default().wal_max_bytes).await
}

async fn store_with(
    name: &str,
    journal: Journal,
    wal_max_bytes: u64,
) -> (Arc<SqliteStore>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("mg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        journal,
        wal_max_bytes,
        ..Options::default()
    };
    let store = Arc::new(SqliteStore::open(dir.join("db.sqlite"), opts).unwrap());
    store
        .insert_key(NewKey {
            key: key("key_w", None),
        })
        .await
        .unwrap();
    (store, dir)
}

async fn fails_alone(journal: Journal) {
    let (store, dir) = store(&format!("writer-{journal:?}"), journal).await;
    let path = dir.join("db.sqlite");
    // Settlement is CHARGE then RECORD: make RECORD fail for one request id,
    // after its CHARGE ran, from a second connection (as a broken database
    // would).
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER fail_bad BEFORE INSERT ON usage_records WHEN NEW.request_id = 'bad'
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
    let ids: Vec<String> = (0..40)
        .map(|i| {
            if i == 17 {
                "bad".into()
            } else {
                format!("r{i}")
            }
        })
        .collect();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                (
                    id.clone(),
                    store.settle(&settlement(&id, "key_w", 0, 1, 2, 0)).await,
                )
            })
        })
        .collect();
    for t in tasks {
        let (id, done) = t.await.unwrap();
        assert_eq!(done.is_err(), id == "bad", "{id}: {done:?}");
    }
    let k = store.get_key("key_w").await.unwrap().unwrap();
    assert_eq!(
        k.quota_used,
        39 * 3,
        "the bad job's charge was rolled back, every other one landed"
    );
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The WAL never grows past its bound, however far behind the checkpoint
/// thread falls: before each commit the writer empties an overgrown WAL
/// itself, so the file can pass the bound by one transaction at most. The
/// bound here (1 MiB) is a quarter of the length at which the checkpoint
/// thread alone would start the WAL over, so only the writer's bound keeps
/// it: every settlement here would otherwise stay in it (over 100 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_within_its_bound_under_nonstop_writes() {
    const MAX: u64 = 1 << 20;
    let (store, dir) = store_with("wal", Journal::Wal, MAX).await;
    let wal = dir.join("db.sqlite-wal");
    // Watch the file's size while the writes go on, not only at the end.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let (wal, done) = (wal.clone(), done.clone());
        move || {
            let mut largest = 0;
            while !done.load(Ordering::Relaxed) {
                largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                std::thread::yield_now();
            }
            largest
        }
    });
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..4000 {
                    let id = format!("r{t}-{i:05}");
                    store
                        .settle(&settlement(&id, "key_w", 0, 1, 2, 0))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let largest = watcher.join().unwrap();
    let k = store.get_key("key_w").await.unwrap().unwrap();
    assert_eq!(k.quota_used, 16_000 * 3, "every settlement landed");
    // The file passes the bound by one transaction at most: here at most
    // four settlements (one per task), a few pages, far less than this slack.
    let last = std::fs::metadata(&wal).unwrap().len();
    assert!(
        largest.max(last) < MAX + (512 << 10),
        "the WAL passed its bound: {largest} bytes at most, {last} at the end"
    );
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
