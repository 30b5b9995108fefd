//! A server killed mid-request (`kill -9`) cannot hold quota past the
//! reservation's lease: the next server on the same database settles the
//! request as abandoned. The real binary, a real SQLite file.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{PATIENCE, Server};

use modelgate_testkit::MockUpstream;
use serde_json::{Value, json};

const ADMIN: &str = "crash-test-admin-key-0123456789";
/// The servers' upstream timeout, so a lease lasts this long (no grace
/// here): far longer than the test, so the killed request cannot end by
/// itself first. The lease's end is then moved into the past in the file,
/// as if the time had passed while no server ran.
const TIMEOUT_SECS: u64 = 600;

fn start(db: &Path) -> (Server, String) {
    let mut cmd = common::command(db, ADMIN);
    cmd.env("MG_TIMEOUT_SECS", TIMEOUT_SECS.to_string())
        .env("MG_LEASE_GRACE_SECS", "0");
    common::start(cmd)
}

async fn admin(base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}/admin/api{path}"))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let text = req.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_holds_no_quota_past_the_lease() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mock = MockUpstream::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("mg-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("db.sqlite");
    let (first, base) = start(&db);
    let key = admin(
        &base,
        reqwest::Method::POST,
        "/keys",
        Some(json!({"name": "k", "quota": 100_000})),
    )
    .await;
    let model = json!({"name": "hang", "backend": "vllm", "base_url": mock.url(), "upstream_model": "mock?fault=hang"});
    admin(&base, reqwest::Method::POST, "/models", Some(model)).await;
    let (plaintext, id) = (
        key["key"].as_str().unwrap().to_owned(),
        key["id"].as_str().unwrap().to_owned(),
    );
    let url = format!("{base}/v1/chat/completions");
    tokio::spawn(async move {
        let body = json!({"model": "hang", "messages": [{"role": "user", "content": "hi"}]});
        let _ = reqwest::Client::new()
            .post(url)
            .bearer_auth(plaintext)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        let leases = admin(&base, reqwest::Method::GET, "/reservations", None).await;
        if leases["data"].as_array().is_some_and(|l| l.len() == 1) {
            assert_eq!(leases["data"][0]["key_id"], json!(id));
            break;
        }
        assert!(Instant::now() < deadline, "never admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(first);
    // Killed with the request in flight: its reservation and lease remain,
    // the lease ending the timeout after admission.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let reserved: i64 = c
            .query_row(
                "SELECT quota_reserved FROM api_keys WHERE id = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        let length: i64 = c
            .query_row("SELECT expires_at - created_at FROM leases", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(reserved > 0, "killed mid-request: {reserved} reserved");
        assert_eq!(length, TIMEOUT_SECS as i64 * 1000);
        // The lease runs out while no server runs; the next one settles it.
        c.execute("UPDATE leases SET expires_at = created_at", [])
            .unwrap();
    }
    let (second, base) = start(&db);
    let deadline = Instant::now() + PATIENCE;
    let k = loop {
        let k = admin(&base, reqwest::Method::GET, &format!("/keys/{id}"), None).await;
        if k["quota_reserved"] == json!(0) {
            break k;
        }
        assert!(Instant::now() < deadline, "still reserved: {k}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(k["quota_used"], json!(0), "nothing charged");
    let leases = admin(&base, reqwest::Method::GET, "/reservations", None).await;
    assert_eq!(leases["data"], json!([]));
    let c = rusqlite::Connection::open(&db).unwrap();
    let error: String = c
        .query_row(
            "SELECT error FROM usage_records WHERE key_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(error, "lease_expired", "one record, written by the expiry");
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
