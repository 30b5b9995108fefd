//! Requests abandoned before their answer began: the client hangs up while
//! the upstream has not answered yet, or the server's drain runs out. Each
//! is still settled exactly once (a `client_disconnected` record, nothing
//! charged) and its reservation released. Over real loopback sockets.

mod common;

use std::time::Duration;

use common::{Harness, Server, post};
use modelgate_native::listener::Limits;
use serde_json::json;

/// Far longer than settling should take.
const PATIENCE: Duration = Duration::from_secs(20);

fn limits(drain: Duration) -> Limits {
    Limits {
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_connections: 64,
        drain,
    }
}

/// Wait (bounded) until the key holds nothing reserved and the usage API
/// shows `records` records of it, all failed; the key's quota used then.
async fn settled(h: &Harness, key_id: &str, records: u64) -> i64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let k = h.stored_key(key_id).await;
        let path = format!("/admin/api/usage?key_id={key_id}");
        let usage = h.admin("GET", &path, None).await.json();
        let errors = usage["totals"]["errors"].as_u64().unwrap_or(0);
        if k.quota_reserved == 0 && errors == records {
            assert_eq!(usage["totals"]["requests"], json!(records), "{usage}");
            assert_eq!(usage["totals"]["total_tokens"], json!(0), "{usage}");
            return k.quota_used;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: reserved {}, {errors} error records",
            k.quota_reserved
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait (bounded) until the upstream has received `n` requests: the
/// `n`th is admitted and its settlement owed. (A reservation alone is not
/// enough: its request may not have taken the reply yet, and a request
/// dropped there is released by its lease's expiry, not at once.)
async fn admitted(h: &Harness, n: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while h.mock.stats().requests < n {
        assert!(tokio::time::Instant::now() < deadline, "never admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_before_the_answer_is_settled() {
    let h = Harness::with(|c| c.timeout_ms = 60_000).await;
    let (key, id) = h.key(json!({"name": "gone", "quota": 100_000})).await;
    h.model("slow", "vllm", "mock?fault=hang").await;
    let server = Server::start(&h, limits(Duration::from_secs(5))).await;
    let url = server.url("/v1/chat/completions");
    for (n, stream) in [(1, false), (2, true)] {
        let body = json!({"model": "slow", "stream": stream, "max_tokens": 50,
            "messages": [{"role": "user", "content": "hello"}]});
        let (url, key) = (url.clone(), key.clone());
        let client =
            tokio::spawn(async move { post(&reqwest::Client::new(), &url, &key, &body).await });
        // Once admitted (the upstream never answers), the client goes:
        // aborting its task drops the connection.
        admitted(&h, n).await;
        client.abort();
        let _ = client.await;
        assert_eq!(settled(&h, &id, n).await, 0, "nothing charged");
    }
    assert!(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_runs_out_settles_what_is_still_in_flight() {
    let h = Harness::with(|c| c.timeout_ms = 60_000).await;
    let (key, id) = h.key(json!({"name": "late", "quota": 100_000})).await;
    h.model("slow", "vllm", "mock?fault=hang").await;
    let server = Server::start(&h, limits(Duration::from_millis(200))).await;
    let url = server.url("/v1/chat/completions");
    let in_flight = tokio::spawn(async move {
        let body = json!({"model": "slow", "messages": [{"role": "user", "content": "hi"}]});
        post(&reqwest::Client::new(), &url, &key, &body).await
    });
    admitted(&h, 1).await;
    assert!(!server.stop().await, "the drain ran out");
    let detached = h.gateway.ports().detached().clone();
    detached.close();
    tokio::time::timeout(PATIENCE, detached.wait())
        .await
        .unwrap();
    assert_eq!(settled(&h, &id, 1).await, 0);
    let answer = in_flight.await.unwrap();
    assert!(answer.is_err(), "the connection was closed: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_outstanding_reservations_and_release_them() {
    let h = std::sync::Arc::new(Harness::with(|c| c.timeout_ms = 60_000).await);
    let (key, id) = h.key(json!({"name": "held", "quota": 100_000})).await;
    h.model("slow", "vllm", "mock?fault=hang").await;
    let in_flight = tokio::spawn({
        let h = h.clone();
        async move { h.chat(&key, common::hello("slow")).await }
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let lease = loop {
        let listed = h.admin("GET", "/admin/api/reservations", None).await.json();
        if let Some(l) = listed["data"].as_array().and_then(|l| l.first()) {
            break l.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "never admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(lease["key_id"], json!(id));
    assert_eq!(lease["model"], json!("slow"));
    let held = lease["amount"].as_i64().unwrap();
    assert_eq!(h.stored_key(&id).await.quota_reserved, held);
    let rid = lease["request_id"].as_str().unwrap();
    let released = h
        .admin("DELETE", &format!("/admin/api/reservations/{rid}"), None)
        .await;
    assert_eq!(released.status, 200, "{}", released.text());
    assert_eq!(h.stored_key(&id).await.quota_reserved, 0);
    let again = h
        .admin("DELETE", &format!("/admin/api/reservations/{rid}"), None)
        .await;
    assert_eq!(again.status, 404, "{}", again.text());
    // The request itself ends later (here: its client goes), and its own
    // settlement runs on detached work: wait for that, then look.
    in_flight.abort();
    let _ = in_flight.await;
    let detached = h.gateway.ports().detached().clone();
    detached.close();
    tokio::time::timeout(PATIENCE, detached.wait())
        .await
        .unwrap();
    assert_eq!(settled(&h, &id, 1).await, 0, "one record, nothing charged");
    assert_eq!(
        h.stored_key(&id).await.quota_reserved,
        0,
        "never released twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_settled_by_a_sweep_after_the_next_admission() {
    use modelgate_core::domain::Lease;
    use modelgate_core::ports::{Accounting, Ports};
    let h = Harness::new().await;
    let (_, dead_id) = h.key(json!({"name": "dead", "quota": 100_000})).await;
    let (live, _) = h.key(json!({"name": "live", "quota": 100_000})).await;
    h.model("m", "vllm", "mock").await;
    // A process that died mid-request left this reservation behind.
    let lease = Lease {
        request_id: "req_0000000000000000000000000000000000dead".into(),
        key_id: dead_id.clone(),
        model: "m".into(),
        backend: "vllm".into(),
        amount: 0,
        money: 0,
        created_at: 1,
        expires_at: 2,
    };
    let store = h.gateway.ports().store();
    assert_eq!(store.reserve_quota(&lease, 40, 40).await.unwrap(), Some(40));
    assert_eq!(h.stored_key(&dead_id).await.quota_reserved, 40);
    // Any admission lets this instance look (once per 30 s).
    assert_eq!(h.chat(&live, common::hello("m")).await.status, 200);
    assert_eq!(settled(&h, &dead_id, 1).await, 0);
}
