//! Key and model records kept by each gateway (`MG_RECORD_CACHE_MS`): an
//! admin change applies at once where it was made, and within the cache's
//! time on another gateway sharing the store (a replica, the CLI).

mod common;

use std::time::Duration;

use common::{Harness, hello};
use modelgate_sqlite::{Options, SqliteStore};
use serde_json::json;

const CACHE_MS: u64 = 300;

struct Shared {
    dir: std::path::PathBuf,
}

impl Shared {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mg-records-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self { dir }
    }

    /// Another gateway on the same file, as another process would be.
    async fn gateway(&self) -> Harness {
        let store = SqliteStore::open(self.dir.join("db.sqlite"), Options::default()).unwrap();
        Harness::build(|c| c.record_cache_ms = CACHE_MS, store).await
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_change_applies_at_once_here_and_within_the_cache_time_elsewhere() {
    let shared = Shared::new("change");
    let (here, there) = (shared.gateway().await, shared.gateway().await);
    let (key, key_id) = here.key(json!({"name": "k", "rpm": 1000})).await;
    let model_id = here.model("m", "vllm", "mock").await;
    // Both read (and keep) the key and the model.
    for g in [&here, &there] {
        assert_eq!(g.chat(&key, hello("m")).await.status, 200);
    }
    let off = here
        .admin(
            "PATCH",
            &format!("/admin/api/models/{model_id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text());
    assert_eq!(
        here.chat(&key, hello("m")).await.status,
        404,
        "at once here"
    );
    let revoked = here
        .admin("DELETE", &format!("/admin/api/keys/{key_id}"), None)
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(
        here.chat(&key, hello("m")).await.status,
        401,
        "at once here"
    );
    // What `there` kept was read before the changes: expired by now. (A
    // lower bound on the system clock: a slower machine only waits past it.)
    tokio::time::sleep(Duration::from_millis(CACHE_MS)).await;
    assert_eq!(there.chat(&key, hello("m")).await.status, 401);
}

#[tokio::test]
async fn a_key_created_elsewhere_works_at_once_and_counters_stay_exact() {
    let shared = Shared::new("counters");
    let (here, there) = (shared.gateway().await, shared.gateway().await);
    here.model("m", "vllm", "mock?tokens=5").await;
    there
        .model_at("m2", "vllm", &here.mock.url(), "mock?tokens=5", json!({}))
        .await;
    // A miss is never kept: `there` serves a key made `here` at once.
    let (key, key_id) = here
        .key(json!({"name": "q", "quota": 30, "rpm": 1000}))
        .await;
    let mut served = 0;
    for g in [&here, &there].into_iter().cycle().take(12) {
        let model = if served % 2 == 0 { "m" } else { "m2" };
        let a = g
            .chat(
                &key,
                json!({"model": model, "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        if a.status == 200 {
            served += 1;
        } else {
            assert_eq!(a.status, 429, "{}", a.text());
        }
    }
    // Both kept the key's record, yet the quota is decided in the shared
    // file: at 5 completion tokens each, no more than 6 fit in 30.
    let k = here
        .admin("GET", &format!("/admin/api/keys/{key_id}"), None)
        .await
        .json();
    assert!(k["quota_used"].as_i64().unwrap() <= 30, "{k}");
    assert_eq!(k["quota_reserved"], 0, "{k}");
    assert!((1..=6).contains(&served), "{served} served");
}
