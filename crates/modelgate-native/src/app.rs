//! The axum shell around the core: find the client IP, check the key from
//! the head, read the body within its limit and deadline, call
//! [`Gateway::handle`], turn its answer into an axum response, and make
//! sure a streamed answer is settled exactly once.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Limited};
use modelgate_core::error::RequestError;
use modelgate_core::{Gateway, Peer, ResponseStream};
use tokio::time::Instant;

use modelgate_core::ports::Ports;

use crate::ports::NativePorts;

/// What the handler needs; `L` is the rate limiter.
pub struct AppState<P: Ports = NativePorts> {
    /// The gateway.
    pub gateway: Gateway<P>,
    /// The address the platform vouches for ([`socket_peer`] natively);
    /// the core applies its proxy policy to it.
    pub peer_ip: fn(&http::Extensions) -> Option<IpAddr>,
    /// Folder of the static admin panel.
    pub admin_dir: PathBuf,
}

impl<P: Ports> Clone for AppState<P> {
    fn clone(&self) -> Self {
        Self {
            gateway: self.gateway.clone(),
            peer_ip: self.peer_ip,
            admin_dir: self.admin_dir.clone(),
        }
    }
}

/// The router: `/admin/` static files, everything else to the core.
pub fn router<P: Ports>(state: AppState<P>) -> Router {
    let ids = state.gateway.clone();
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/admin/") }))
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(admin_file::<P>))
        .route("/admin/{*file}", get(admin_file::<P>))
        .route("/admin/api/{*rest}", any(handle::<P>))
        .fallback(handle::<P>)
        .with_state(state)
        // The core stamps its own answers; this covers static files and redirects.
        .layer(axum::middleware::map_response(move |mut resp: Response| {
            let ids = ids.clone();
            async move {
                if !resp.headers().contains_key("x-request-id")
                    && let Ok(v) = HeaderValue::from_str(&ids.new_request_id())
                {
                    resp.headers_mut().insert("x-request-id", v);
                }
                resp
            }
        }))
}

/// The metrics listener's router: `GET /metrics` and nothing else.
pub fn metrics_router() -> Router {
    Router::new().route(
        "/metrics",
        get(|| async {
            match crate::metrics::render() {
                Some(text) => (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(modelgate_core::observe::CONTENT_TYPE),
                    )],
                    text,
                )
                    .into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }),
    )
}

/// The TCP peer's address (served with `ConnectInfo<SocketAddr>`).
pub fn socket_peer(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

async fn handle<P: Ports>(State(state): State<AppState<P>>, req: Request) -> Response {
    let gateway = &state.gateway;
    let limit = gateway.config().max_body_bytes;
    let deadline = Instant::now() + Duration::from_millis(gateway.config().body_timeout_ms);
    let peer = Peer {
        ip: (state.peer_ip)(req.extensions()),
    };
    let (mut parts, body) = req.into_parts();
    // The core refuses an unknown route, a wrong method, a missing or bad
    // key, then a body announced over the route's limit, before a byte of
    // the body is buffered; and a route that takes no body never reads one.
    let admitted = match gateway.check_head(&mut parts, peer).await {
        Err(refused) => return refuse(refused, body, limit, deadline),
        Ok(admitted) if !admitted.reads_body => {
            let resp = gateway
                .handle(http::Request::from_parts(parts, Bytes::new()), peer)
                .await;
            return refuse(resp, body, limit, deadline);
        }
        Ok(admitted) => admitted,
    };
    let (limit, shape) = (admitted.body_limit, admitted.shape);
    let read = tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return into_axum(gateway.reject(&RequestError::BodyTooLarge { limit }.into(), shape));
        }
        Ok(Err(_)) => {
            let err = RequestError::invalid("The request body could not be read.", None);
            return into_axum(gateway.reject(&err.into(), shape));
        }
        Err(_) => {
            let secs = gateway.config().body_timeout_ms / 1000;
            let err = RequestError::BodyTimeout { secs };
            return into_axum(gateway.reject(&err.into(), shape));
        }
    };
    let resp = gateway
        .handle(http::Request::from_parts(parts, bytes), peer)
        .await;
    into_axum(resp)
}

/// Answer a request whose body is not read (refused from its head, or its
/// route takes none) at once. A client that sends its whole body before it
/// reads (Python's urllib does) would find the connection reset, not the
/// answer, if the body were left unread: so the body is read and discarded
/// beside the answer, up to twice the body limit (plus 1 MiB) and the body
/// deadline, never kept.
fn refuse<P: Ports>(
    resp: modelgate_core::Response<P>,
    body: Body,
    limit: usize,
    deadline: Instant,
) -> Response {
    let drain = async move {
        let mut body = body;
        let mut left = limit.saturating_mul(2).saturating_add(1 << 20);
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, Bytes::len);
            match left.checked_sub(n) {
                Some(l) => left = l,
                None => break,
            }
        }
    };
    tokio::spawn(tokio::time::timeout_at(deadline, drain));
    into_axum(resp)
}

fn into_axum<P: Ports>(resp: modelgate_core::Response<P>) -> Response {
    let (parts, body) = resp.into_parts();
    let body = match body {
        modelgate_core::Body::Full(b) => Body::from(b),
        // A stream dropped early (client gone) settles itself (the core's
        // obligation); one that ends settles before the body ends, so usage
        // is recorded when the client sees the end of the stream.
        modelgate_core::Body::Stream(s) => {
            let chunks = stream::unfold(s, |mut s: Box<ResponseStream<P>>| async move {
                match s.next_chunk().await {
                    Some(bytes) => Some((Ok::<Bytes, Infallible>(bytes), s)),
                    None => {
                        if let Some(settle) = s.take_settlement() {
                            settle.await;
                        }
                        None
                    }
                }
            });
            Body::from_stream(chunks)
        }
    };
    Response::from_parts(parts, body)
}

async fn admin_file<P: Ports>(State(state): State<AppState<P>>, req: Request) -> Response {
    let rel = req
        .uri()
        .path()
        .trim_start_matches("/admin")
        .trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    // Only plain names below the folder: no '..', no absolute paths.
    if rel
        .split('/')
        .any(|seg| seg.is_empty() || seg == ".." || seg.starts_with('.'))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = state.admin_dir.join(rel);
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mime = match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let mut resp = Body::from(bytes).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    for (name, value) in modelgate_core::ADMIN_PANEL_HEADERS {
        h.insert(*name, HeaderValue::from_static(value));
    }
    resp
}
