//! The store conformance suite against DynamoDB as moto's server speaks it
//! (one moto process per test, on a free loopback port, stopped by the
//! test), plus what only DynamoDB needs checking.

use aws_sdk_dynamodb::config::{Credentials, Region};
use modelgate_core::domain::{KeyPatch, NewKey, NewModel};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{Accounting, KeyStore, ModelStore};
use modelgate_dynamodb::DynamoStore;
use modelgate_testkit::conformance::{key, lease, model, settlement};
use modelgate_testkit::service::Service;

/// A store on a fresh table of its own moto server, which lives as long
/// as the returned guard.
async fn fresh() -> Option<(DynamoStore, Service)> {
    let moto = Service::moto()?;
    let config = DynamoStore::config_loader(DynamoStore::DEFAULT_TIMEOUT)
        .endpoint_url(moto.url("http"))
        .region(Region::new("us-east-1"))
        // moto checks no signature; the SDK wants credentials to sign.
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .load()
        .await;
    let store = DynamoStore::new(&config, "modelgate");
    store.ensure_table().await.unwrap();
    store.ensure_table().await.expect("creating twice is fine");
    Some((store, moto))
}

modelgate_testkit::store_conformance!(guarded fresh().await);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_set_later_counts_what_was_used_before() {
    let Some((s, _moto)) = fresh().await else {
        return;
    };
    s.insert_key(NewKey {
        key: key("key_l", None),
    })
    .await
    .unwrap();
    s.settle(&settlement("r1", "key_l", 0, 30, 10, 5))
        .await
        .unwrap();
    let patch = KeyPatch {
        quota: Some(Some(100)),
        ..KeyPatch::default()
    };
    s.update_key("key_l", patch, 6).await.unwrap().unwrap();
    assert_eq!(
        s.reserve_quota(&lease("key_l"), 61, 61).await.unwrap(),
        None
    );
    assert_eq!(
        s.reserve_quota(&lease("key_l"), 60, 60).await.unwrap(),
        Some(60)
    );
    let reset = KeyPatch {
        quota_used: Some(0),
        ..KeyPatch::default()
    };
    let k = s.update_key("key_l", reset, 7).await.unwrap().unwrap();
    assert_eq!((k.quota_used, k.quota_reserved), (0, 60));
    assert_eq!(
        s.reserve_quota(&lease("key_l"), 40, 40).await.unwrap(),
        Some(40)
    );
    assert_eq!(s.reserve_quota(&lease("key_l"), 1, 1).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settlement_for_a_missing_key_still_records_usage() {
    use modelgate_core::domain::UsageQuery;
    use modelgate_core::ports::UsageStore;
    let Some((s, _moto)) = fresh().await else {
        return;
    };
    s.settle(&settlement("r9", "key_gone", 0, 1, 2, 5))
        .await
        .unwrap();
    s.settle(&settlement("r9", "key_gone", 0, 1, 2, 5))
        .await
        .unwrap();
    let rows = s
        .usage_by_day(&UsageQuery {
            from_ms: 0,
            to_ms: 10,
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (rows.len(), rows[0].requests, rows[0].completion_tokens),
        (1, 1, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_dynamodb_is_unavailable_then_the_same_store_recovers() {
    use modelgate_core::error::StoreError;
    let Some((s, moto)) = fresh().await else {
        return;
    };
    let port = moto.port();
    drop(moto);
    let t = std::time::Instant::now();
    let down = s.find_key_by_hash("abc").await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    let settled = s.settle(&settlement("r1", "key_x", 0, 1, 1, 0)).await;
    assert!(
        matches!(settled, Err(StoreError::Unavailable(_))),
        "{settled:?}"
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(30),
        "fails within the SDK's timeouts"
    );
    // The dependency comes back (empty: moto keeps nothing): the same
    // client, without a restart, serves again.
    let _moto = Service::moto_on(port);
    s.ensure_table().await.unwrap();
    s.insert_key(NewKey {
        key: key("key_b", Some(100)),
    })
    .await
    .unwrap();
    assert_eq!(
        s.reserve_quota(&lease("key_b"), 1, 10).await.unwrap(),
        Some(10)
    );
}

/// The SDK retries a transaction whose attempt timed out; moto ignores the
/// idempotency token that makes that safe on DynamoDB, so a retry finds the
/// first attempt's items. Writing the same new record again is therefore
/// success (and a reservation holds once), while another record under a
/// taken name or hash is a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_write_finds_its_first_attempt() {
    let Some((s, _moto)) = fresh().await else {
        return;
    };
    let k = key("key_r", None);
    for _ in 0..2 {
        let got = s.insert_key(NewKey { key: k.clone() }).await.unwrap();
        assert_eq!(got.id, "key_r");
    }
    let mut other = key("key_s", None);
    other.hash = k.hash.clone();
    assert!(matches!(
        s.insert_key(NewKey { key: other }).await,
        Err(StoreError::Conflict(_))
    ));
    // A reservation retried after its first attempt landed holds once.
    s.insert_key(NewKey {
        key: key("key_q", Some(100)),
    })
    .await
    .unwrap();
    let l = lease("key_q");
    assert_eq!(s.reserve_quota(&l, 30, 30).await.unwrap(), Some(30));
    assert_eq!(s.reserve_quota(&l, 50, 50).await.unwrap(), Some(30));
    let k = s.get_key("key_q").await.unwrap().unwrap();
    assert_eq!(k.quota_reserved, 30, "held once");
    let m = model("mdl_r", "m-retried");
    for _ in 0..2 {
        s.insert_model(NewModel { model: m.clone() }).await.unwrap();
    }
    assert!(matches!(
        s.insert_model(NewModel {
            model: model("mdl_s", "m-retried")
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
}
