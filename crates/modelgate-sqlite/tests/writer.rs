//! The group-commit writer: a job that fails inside a batch fails alone,
//! and leaves nothing half-done.

use modelgate_core::domain::NewKey;
use modelgate_core::ports::KeyStore;
use modelgate_sqlite::{Options, SqliteStore};
use modelgate_testkit::conformance::{key, settlement};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_job_fails_alone_and_half_of_it_is_rolled_back() {
    let dir = std::env::temp_dir().join(format!("mg-writer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("db.sqlite");
    let store = std::sync::Arc::new(SqliteStore::open(&path, Options::default()).unwrap());
    store
        .insert_key(NewKey {
            key: key("key_w", None),
        })
        .await
        .unwrap();
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
