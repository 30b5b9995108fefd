//! The native listener on a real loopback socket: deadlines for a slow or
//! idle connection, a connection cap with backpressure, keys checked before
//! a body is read, and early answers a body-first client still receives.
//! Every wait is bounded far above what the behaviour needs, so a slow
//! machine passes too; nothing asserts a duration as a pass mark.

mod common;

use std::time::Duration;

use common::{Harness, Server};
use modelgate_native::listener::Limits;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than anything here should take.
const PATIENCE: Duration = Duration::from_secs(20);

fn limits(header_timeout: Duration, max_connections: usize) -> Limits {
    Limits {
        header_timeout,
        idle_timeout: Duration::from_secs(60),
        max_connections,
        drain: Duration::from_secs(5),
    }
}

/// Read until the peer closes or resets; fails past `PATIENCE`.
async fn closed_by_server(s: &mut TcpStream) {
    let mut sink = Vec::new();
    let read = tokio::time::timeout(PATIENCE, s.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "still open after {PATIENCE:?}");
}

/// Read until the peer closes; what it sent. Fails past `PATIENCE`.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(PATIENCE, s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "still open after {PATIENCE:?}");
    String::from_utf8_lossy(&out).into_owned()
}

/// Read one response head and body (by content-length).
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let got = tokio::time::timeout(PATIENCE, async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before a whole response");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    return text;
                }
            }
        }
    })
    .await;
    got.expect("a response within the patience")
}

#[tokio::test]
async fn a_half_sent_head_and_an_idle_connection_are_closed() {
    let h = Harness::new().await;
    let server = Server::start(&h, limits(Duration::from_millis(500), 64)).await;
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    read_to_close(&mut half).await;
    // A kept-alive connection after its answer: closed once idle too.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(server.stop().await, "drained in time");
}

/// Connections that never send a byte (or not enough for hyper to tell
/// HTTP/1 from HTTP/2) hold a place of the cap: each is closed when the
/// header deadline runs out from its accept, so the listener serves again.
#[tokio::test]
async fn silent_connections_are_closed_and_do_not_starve_the_listener() {
    let h = Harness::new().await;
    let server = Server::start(&h, limits(Duration::from_secs(1), 1000)).await;
    let mut silent = Vec::new();
    for _ in 0..1100 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Ten bytes of the HTTP/2 preface: protocol detection waits for 24.
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial.write_all(b"PRI * HTTP").await.unwrap();
    let mut fresh = TcpStream::connect(server.addr).await.unwrap();
    fresh
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut fresh).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    closed_by_server(&mut partial).await;
    for s in &mut silent {
        closed_by_server(s).await;
    }
    assert!(server.stop().await, "drained in time");
}

/// An HTTP/2 client that answers every ping but opens no stream is sent a
/// GOAWAY after the idle timeout, after a request and without one.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_though_it_answers_pings() {
    let h = Harness::new().await;
    let mut l = limits(Duration::from_secs(1), 64);
    l.idle_timeout = Duration::from_secs(1);
    let server = Server::start(&h, l).await;
    for ask in [true, false] {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(Duration::from_millis(200))
                .keep_alive_while_idle(true)
                .handshake::<_, String>(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        if ask {
            let req = http::Request::get(server.url("/health"))
                .body(String::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            drop(resp);
        }
        let ended = tokio::time::timeout(PATIENCE, conn).await;
        assert!(ended.is_ok(), "HTTP/2 connection open after {PATIENCE:?}");
        drop(send);
    }
    assert!(server.stop().await, "drained in time");
}

#[tokio::test]
async fn past_the_cap_connections_wait_until_one_closes() {
    let h = Harness::new().await;
    let server = Server::start(&h, limits(Duration::from_secs(60), 4)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // The fifth connects (the kernel's backlog) but is not served...
    let mut fifth = TcpStream::connect(server.addr).await.unwrap();
    fifth
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), fifth.read(&mut byte)).await;
    assert!(early.is_err(), "served past the cap");
    // ...until one of the four goes.
    drop(held.pop());
    let answer = read_response(&mut fifth).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
    assert!(server.stop().await, "drained in time");
}

#[tokio::test]
async fn a_bad_key_is_refused_from_the_head_before_any_body() {
    let h = Harness::new().await;
    let server = Server::start(&h, limits(Duration::from_secs(30), 64)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    // A large body announced, not one byte of it sent.
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer mg-wrong\r\n\
          Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = read_response(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("invalid_api_key"), "{answer}");
    assert_eq!(h.mock.stats().requests, 0);
    // (The server waits for the announced body until the body deadline.)
    drop(s);
    assert!(server.stop().await, "drained in time");
}

/// Python's urllib writes the whole body, then reads: it must get the
/// answer, not a reset, whether the body was refused for its size or for
/// the key. The body is larger than loopback's socket buffers can take in
/// (Linux autotunes them up to 32 MiB + 4 MiB): an unread one would block
/// the writer until the server closed on it.
#[tokio::test]
async fn a_client_that_writes_its_whole_body_first_still_gets_the_answer() {
    let h = Harness::with(|c| c.max_body_bytes = 32 << 20).await;
    let (key, _) = h.key(json!({"name": "b"})).await;
    let server = Server::start(&h, limits(Duration::from_secs(30), 64)).await;
    let body = vec![b' '; 48 << 20];
    for (auth, status) in [(key.as_str(), "413"), ("mg-wrong", "401")] {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        tokio::time::timeout(PATIENCE, s.write_all(&body))
            .await
            .expect("the body was taken in time")
            .expect("the whole body was written: no reset");
        let answer = read_response(&mut s).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
    }
    assert!(server.stop().await, "drained in time");
}

#[tokio::test]
async fn a_body_that_never_comes_is_a_408() {
    let h = Harness::with(|c| c.body_timeout_ms = 500).await;
    let (key, _) = h.key(json!({"name": "t"})).await;
    let server = Server::start(&h, limits(Duration::from_secs(30), 64)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_response(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(server.stop().await, "drained in time");
}

/// Whatever the route, no body is waited for before the head is answered:
/// an unknown path (404), a wrong method (405), a route without its key
/// (401), and a route that takes no body (answered, the body never read).
/// The body deadline is far past the patience, so an answer that waited
/// for the body fails.
#[tokio::test]
async fn every_route_is_answered_from_the_head_when_it_reads_no_body() {
    let h = Harness::with(|c| c.body_timeout_ms = 300_000).await;
    let (key, _) = h.key(json!({"name": "r"})).await;
    let server = Server::start(&h, limits(Duration::from_secs(30), 64)).await;
    let auth = format!("Authorization: Bearer {key}\r\n");
    for (method, path, auth, status) in [
        ("PUT", "/v1/chat/completions", "", "405"),
        ("POST", "/v1/nope", "", "404"),
        ("GET", "/v1/models", "", "401"),
        ("DELETE", "/admin/api/keys/x", "", "401"),
        ("GET", "/v1/models", auth.as_str(), "200"),
        ("GET", "/health", "", "200"),
    ] {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 5000000\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let answer = read_response(&mut s).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{method} {path}: {answer}"
        );
    }
    assert_eq!(h.mock.stats().requests, 0);
    assert!(server.stop().await, "drained in time");
}
