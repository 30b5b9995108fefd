//! `modelgate-passthrough --upstream http://127.0.0.1:PORT`: the stack
//! ModelGate's native server is built on (axum on hyper, hyper-util's pooled
//! client, mimalloc, tokio's multi-thread runtime) forwarding every request
//! to the upstream as it came and its answer back (buffered when its length
//! is known, streamed as it comes otherwise, as the gateway does), and
//! nothing else: no keys, limits, routing or records. `make bench` measures
//! it beside nginx and the gateway, so the report can tell what the stack
//! costs from what the gateway's own work costs. Prints `READY <url>`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

async fn forward(
    State(up): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", up.base));
    if let Some(t) = headers.get(header::CONTENT_TYPE) {
        req = req.header(header::CONTENT_TYPE, t);
    }
    let Ok(req) = req.body(Full::new(body)) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let answer = async {
        let (parts, body) = up.client.request(req).await.ok()?.into_parts();
        let body = if parts.headers.contains_key(header::CONTENT_LENGTH) {
            Body::from(body.collect().await.ok()?.to_bytes())
        } else {
            Body::new(body)
        };
        Some((
            parts.status,
            parts.headers.get(header::CONTENT_TYPE).cloned(),
            body,
        ))
    };
    match answer.await {
        Some((status, kind, body)) => {
            let mut out = Response::new(body);
            *out.status_mut() = status;
            if let Some(k) = kind {
                out.headers_mut().insert(header::CONTENT_TYPE, k);
            }
            out
        }
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut base = None;
    while let Some(a) = args.next() {
        if a == "--upstream" {
            base = args.next();
        }
    }
    let Some(base) = base else {
        eprintln!("usage: modelgate-passthrough --upstream http://HOST:PORT");
        std::process::exit(2);
    };
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(tcp);
    let app = Router::new().fallback(forward).with_state(Upstream {
        client,
        base: base.trim_end_matches('/').to_owned(),
    });
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    println!("READY http://{}", listener.local_addr()?);
    // As the gateway's listener does: a streamed chunk goes out at once.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
