//! `modelgate-mock [--port N]`: run the mock upstream on 127.0.0.1 and print
//! `READY <url>` once it listens (for the end-to-end tests and benchmarks).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--port" {
            port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        }
    }
    let mock =
        modelgate_testkit::MockUpstream::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("READY {}", mock.url());
    mock.wait().await;
    Ok(())
}
