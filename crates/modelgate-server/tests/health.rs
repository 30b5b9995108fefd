//! `modelgate health` (a container's HEALTHCHECK): 200 is healthy; another
//! status, a closed port or silence is not, within its bound.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

fn answering(status: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = l.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let mut buf = [0u8; 256];
            let _ = c.read(&mut buf);
            assert!(buf.starts_with(b"GET /health HTTP/1.0\r\n"));
            let _ =
                c.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes());
        }
    });
    at
}

#[test]
fn health_is_a_200_from_health() {
    assert!(modelgate_server::health(answering("200 OK")).is_ok());
    let e = modelgate_server::health(answering("503 Service Unavailable")).unwrap_err();
    assert!(e.contains("503"), "{e}");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(modelgate_server::health(closed).is_err());
    // All addresses: asked on the loopback one.
    let at = answering("200 OK");
    let any: SocketAddr = format!("0.0.0.0:{}", at.port()).parse().unwrap();
    assert!(modelgate_server::health(any).is_ok());
}

#[test]
fn a_silent_server_is_unhealthy_in_bounded_time() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = l.local_addr().unwrap();
    let started = std::time::Instant::now();
    assert!(modelgate_server::health(at).is_err());
    // The bound is 3 s; a generous ceiling for a busy machine.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    drop(l);
}
