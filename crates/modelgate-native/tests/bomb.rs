//! A 40 KB zstd body whose frame declares a 1 TiB window, then 10,000 RLE
//! blocks of 128 KiB: it once made each request hold gigabytes while the
//! decoder kept "history" it was never allowed to drain. Alone in its test
//! binary, so the process's high-water mark is this request's.

mod common;

use common::{Harness, hello};
use serde_json::json;

fn bomb() -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf0];
    // Block header (3 bytes, little endian): last flag, type 1 (RLE) in
    // bits 1-2, the regenerated size from bit 3; then the byte to repeat.
    let header = |last: u32| (last | 1 << 1 | (128 << 10) << 3).to_le_bytes();
    for i in 0..10_000 {
        f.extend_from_slice(&header(u32::from(i == 9_999))[..3]);
        f.push(b' ');
    }
    f
}

/// The process's peak resident memory (`VmHWM`), in bytes.
fn high_water() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kb * 1024
}

#[tokio::test]
async fn a_zstd_window_bomb_is_refused_in_bounded_memory_and_after_the_rate_limit() {
    let h = Harness::new().await;
    h.model("m", "vllm", "mock?tokens=1").await;
    let (key, _) = h.key(json!({"name": "z", "rpm": 1})).await;
    let body = bomb();
    assert!(body.len() < 48 * 1024, "{}", body.len());
    let auth = format!("Bearer {key}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-encoding", "zstd"),
    ];
    let before = high_water();
    let first = h
        .raw("POST", "/v1/chat/completions", &headers, body.clone())
        .await;
    assert_eq!(first.status, 413, "{}", first.text());
    assert_eq!(first.json()["error"]["code"], "request_too_large");
    let grew = high_water().saturating_sub(before);
    assert!(grew < 64 << 20, "peak memory grew by {grew} bytes");
    // The key's one request a minute is spent: the next bombs are refused
    // by the rate limit before they are decoded.
    for _ in 0..4 {
        let again = h
            .raw("POST", "/v1/chat/completions", &headers, body.clone())
            .await;
        assert_eq!(again.status, 429, "{}", again.text());
    }
    // An uncompressed request is counted once, as before.
    let (plain, _) = h.key(json!({"name": "p", "rpm": 1})).await;
    assert_eq!(h.chat(&plain, hello("m")).await.status, 200);
    assert_eq!(h.chat(&plain, hello("m")).await.status, 429);
    assert_eq!(h.mock.stats().requests, 1);
}
