//! A bounded soak over real loopback sockets: mixed streaming and buffered
//! traffic, upstream faults and random client disconnects, many at a time.
//! Afterwards the books must balance to the token, and nothing may leak.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::Harness;
use futures_util::StreamExt;
use modelgate_testkit::MockUpstream;
use serde_json::{Value, json};

const WARMUP: u64 = 150;
const REQUESTS: u64 = 2_000;
const PARALLEL: usize = 24;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// One client request; `cut_after` drops the stream after that many chunks.
async fn one(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    model: &str,
    stream: bool,
    cut_after: Option<usize>,
) {
    let body = json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "soak test words"}]});
    let Ok(resp) = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    else {
        return;
    };
    let mut chunks = resp.bytes_stream();
    let mut seen = 0;
    while let Some(Ok(_)) = chunks.next().await {
        seen += 1;
        if cut_after.is_some_and(|n| seen >= n) {
            return; // dropping the body closes the connection mid-stream
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_with_faults_and_disconnects_balances_to_the_token() {
    let h = Harness::new().await;
    // Whole requests go to one upstream, disconnected ones to another, so
    // each side's books can be checked exactly.
    let cutoff = MockUpstream::start().await.unwrap();
    for (name, upstream) in [
        ("ok", "mock?tokens=12"),
        ("slow", "mock?tokens=20&itl_ms=1"),
        ("cut", "mock?tokens=20&fault=cut&after=4"),
        ("broken", "mock?status=500"),
        ("garbled", "mock?tokens=6&fault=malformed&after=3"),
    ] {
        h.model(name, "vllm", upstream).await;
    }
    h.model_at(
        "gone",
        "vllm",
        &cutoff.url(),
        "mock?tokens=200&itl_ms=2",
        json!({}),
    )
    .await;
    let (whole_key, whole_id) = h
        .key(json!({"name": "whole", "quota": 1_000_000_000, "rpm": 1_000_000}))
        .await;
    let (cut_key, cut_id) = h
        .key(json!({"name": "cut", "quota": 1_000_000_000, "rpm": 1_000_000}))
        .await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = h
        .app
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let sent: Arc<HashMap<&str, AtomicU64>> =
        Arc::new([("whole", AtomicU64::new(0)), ("cut", AtomicU64::new(0))].into());
    let keys = (whole_key, cut_key);
    // A warm-up round fills the connection pools; what is open after it is
    // the baseline a leak would grow past.
    traffic(&base, &keys, 0..WARMUP, &sent).await;
    let (fds_before, tasks_before) = settled_resources(usize::MAX, usize::MAX).await;
    traffic(&base, &keys, WARMUP..WARMUP + REQUESTS, &sent).await;

    let usage_of = |id: String| {
        let h = &h;
        async move {
            h.admin(
                "GET",
                &format!("/admin/api/usage?key_id={id}&from=2020-01-01"),
                None,
            )
            .await
            .json()["totals"]
                .clone()
        }
    };
    // Disconnected streams settle in the background: wait (bounded) for all.
    let want_cut = sent["cut"].load(Ordering::Relaxed);
    let mut cut: Value = Value::Null;
    for _ in 0..500 {
        cut = usage_of(cut_id.clone()).await;
        if cut["requests"] == want_cut {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let whole = usage_of(whole_id.clone()).await;

    eprintln!(
        "soak: whole {whole}, served {:?}; disconnected {cut}, served {:?}",
        h.mock.stats(),
        cutoff.stats()
    );
    // Every request has exactly one usage record.
    assert_eq!(
        whole["requests"],
        sent["whole"].load(Ordering::Relaxed),
        "{whole}"
    );
    assert_eq!(cut["requests"], want_cut, "{cut}");
    // Whole requests: recorded tokens are what the upstream served.
    let served = h.mock.stats();
    assert_eq!(
        whole["completion_tokens"], served.completion_tokens,
        "{whole} vs {served:?}"
    );
    // Disconnected ones: never more than the upstream served, and the
    // upstream was stopped well before it finished (200 tokens each).
    let cut_served = cutoff.stats();
    let cut_tokens = cut["completion_tokens"].as_u64().unwrap();
    assert!(
        cut_tokens <= cut_served.completion_tokens,
        "{cut} vs {cut_served:?}"
    );
    assert!(
        cut_served.completion_tokens < want_cut * 200 / 2,
        "upstream requests were cancelled: {cut_served:?}"
    );
    // Quota counters agree with the records, and nothing stays reserved.
    for (id, totals) in [(&whole_id, &whole), (&cut_id, &cut)] {
        let k = h.wait_key(id, |k| k.quota_reserved == 0).await;
        assert_eq!(k.quota_reserved, 0);
        assert_eq!(
            Some(k.quota_used),
            totals["total_tokens"].as_i64(),
            "{totals}"
        );
    }
    // No leaked tasks or sockets: a leak per request would grow by hundreds;
    // idle pooled connections (a socket and a task each, at both ends) may
    // differ by the parallelism.
    let slack = 4 * PARALLEL;
    let (fds, tasks) = settled_resources(fds_before + slack, tasks_before + slack).await;
    assert!(
        fds <= fds_before + slack,
        "file handles: {fds_before} before, {fds} after"
    );
    assert!(
        tasks <= tasks_before + slack,
        "tasks: {tasks_before} before, {tasks} after"
    );
    server.abort();
}

/// Open file handles and live tasks once they stop falling (bounded wait),
/// or as soon as both are within the limits.
async fn settled_resources(fd_limit: usize, task_limit: usize) -> (usize, usize) {
    let now = || {
        (
            open_fds(),
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        )
    };
    let mut last = now();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let cur = now();
        if (cur.0 <= fd_limit && cur.1 <= task_limit) || cur == last {
            return cur;
        }
        last = cur;
    }
    last
}

/// Requests `range` of the fixed mix, `PARALLEL` at a time, each from a
/// client of its own connection pool (dropped at the end).
async fn traffic(
    base: &str,
    (whole_key, cut_key): &(String, String),
    range: std::ops::Range<u64>,
    sent: &Arc<HashMap<&'static str, AtomicU64>>,
) {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(range.start));
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (client, base, next, sent) =
                (client.clone(), base.to_owned(), next.clone(), sent.clone());
            let (whole_key, cut_key, end) = (whole_key.clone(), cut_key.clone(), range.end);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return;
                    }
                    // A fixed pseudo-random mix (the same run to run).
                    let r = i.wrapping_mul(2_654_435_761) % 100;
                    if r < 20 {
                        sent["cut"].fetch_add(1, Ordering::Relaxed);
                        let after = 1 + usize::try_from(r % 7).unwrap();
                        one(&client, &base, &cut_key, "gone", true, Some(after)).await;
                    } else {
                        sent["whole"].fetch_add(1, Ordering::Relaxed);
                        let model = ["ok", "slow", "cut", "broken", "garbled"]
                            [usize::try_from(r % 5).unwrap()];
                        one(&client, &base, &whole_key, model, r % 2 == 0, None).await;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}
