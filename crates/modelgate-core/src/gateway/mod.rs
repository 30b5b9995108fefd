//! The gateway: routing, the request phases, the admin API.
//!
//! [`Gateway::handle`] takes a buffered request (the runtime has already
//! enforced the body limit while reading it) and returns a response whose
//! body is either whole or a [`ResponseStream`] the runtime pulls chunk by
//! chunk. Settlement (usage record + quota reconcile) is a future the
//! runtime runs exactly once: see [`ResponseStream::take_settlement`].

mod admin;
mod admin_usage;
mod admission;
mod conversation;
mod deployments;
mod dialect;
mod forward;
mod head;
mod keys;
mod leases;
mod limits;
mod mcp;
mod mcp_answer;
mod mcp_back;
mod mcp_calls;
mod mcp_catalog;
mod mcp_eras;
mod mcp_input;
mod mcp_listen;
mod mcp_modern;
mod mcp_open;
mod mcp_record;
mod mcp_servers;
mod mcp_stream;
mod mcp_subscribe;
mod mcp_tools;
mod mcp_upstream;
mod models;
mod proxy;
mod records;
mod reserve;
mod respond;
mod route;
mod settle;
mod stream;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;

use crate::config::Config;
use crate::error::{GatewayError, RequestError};
use crate::ports::Ports;
use crate::routing::Router;

pub use head::Admitted;
pub use route::{Credential, ErrorShape, Route};
pub use stream::ResponseStream;

/// Security headers every runtime sets on the admin panel's static files:
/// only same-origin scripts, styles and API calls, no framing, no sniffing.
pub const ADMIN_PANEL_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
];

/// A response body: whole, or streamed from the upstream.
pub enum Body<P: Ports> {
    /// Complete bytes.
    Full(Bytes),
    /// Server-sent events relayed as they arrive.
    Stream(Box<ResponseStream<P>>),
}

impl<P: Ports> std::fmt::Debug for Body<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(b) => f.debug_tuple("Full").field(&b.len()).finish(),
            Self::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl<P: Ports> Body<P> {
    /// The whole body, if it is not a stream.
    pub fn as_full(&self) -> Option<&Bytes> {
        match self {
            Self::Full(b) => Some(b),
            Self::Stream(_) => None,
        }
    }
}

/// The gateway's answer.
pub type Response<P> = http::Response<Body<P>>;

struct Inner<P: Ports> {
    ports: P,
    config: Config,
    router: Arc<Router>,
    /// Key and model records read lately.
    records: records::Records,
    /// When this instance last looked for expired leases (epoch ms).
    last_sweep_ms: AtomicI64,
    /// When this instance last deleted expired responses (epoch ms).
    last_purge_ms: AtomicI64,
    /// What MCP session ids are sealed with.
    mcp_key: crate::mcp::session::SessionKey,
    /// Which MCP servers speak the stateless era.
    mcp_eras: mcp_eras::Eras,
}

/// The gateway, generic over the runtime's ports. Cheap to clone.
pub struct Gateway<P: Ports> {
    inner: Arc<Inner<P>>,
}

impl<P: Ports> Clone for Gateway<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// What the runtime knows about the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer {
    /// The address the platform vouches for (socket peer, Lambda
    /// `sourceIp`, `cf-connecting-ip`); the gateway applies
    /// [`crate::edge::client_ip`] to it.
    pub ip: Option<IpAddr>,
}

impl<P: Ports> Gateway<P> {
    /// A gateway over `ports` with `config`.
    pub fn new(ports: P, config: Config) -> Self {
        let mut seed = [0u8; 8];
        ports.fill_random(&mut seed);
        let record_cache_ms = config.record_cache_ms;
        let mcp_key = mcp_session_key(&ports, &config);
        Self {
            inner: Arc::new(Inner {
                ports,
                config,
                router: Router::new(u64::from_le_bytes(seed)),
                records: records::Records::new(record_cache_ms),
                last_sweep_ms: AtomicI64::new(0),
                last_purge_ms: AtomicI64::new(0),
                mcp_key,
                mcp_eras: mcp_eras::Eras::default(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The ports.
    pub fn ports(&self) -> &P {
        &self.inner.ports
    }

    fn now_ms(&self) -> i64 {
        self.inner.ports.now_ms()
    }

    /// A fresh request id: `req_`, the time in milliseconds (12 hex
    /// digits), then 24 random hex digits. Ids sort by time, so each usage
    /// record lands at the end of the request-id index instead of on a random
    /// page of it (a third of the pages each settlement wrote), and the
    /// random part alone keeps them unique across processes.
    pub fn new_request_id(&self) -> String {
        let ms = u64::try_from(self.now_ms()).unwrap_or(0) & 0xffff_ffff_ffff;
        self.new_id(&format!("req_{ms:012x}"))
    }

    /// A fresh random id, `prefix` + 24 hex digits.
    fn new_id(&self, prefix: &str) -> String {
        let mut b = [0u8; 12];
        self.inner.ports.fill_random(&mut b);
        format!("{prefix}{}", hex::encode(b))
    }

    /// Serve one request.
    pub async fn handle(&self, req: http::Request<Bytes>, peer: Peer) -> Response<P> {
        let request_id = self.new_request_id();
        let started = self.now_ms();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let peer = self.client_peer(req.headers(), peer);
        let route = match req.extensions().get::<Route>() {
            Some(r) => Some(r.clone()),
            None => Route::resolve(req.method(), req.uri().path()).ok(),
        };
        let shape = ErrorShape::of(route.as_ref(), req.headers());
        let mut resp = match self.route(req, peer, &request_id).await {
            Ok(r) => r,
            Err(e) => error_response(&e, shape, &request_id),
        };
        name_request(resp.headers_mut(), &request_id);
        if resp.status() != StatusCode::OK || !matches!(resp.body(), Body::Stream(_)) {
            tracing::debug!(%request_id, %method, path, status = resp.status().as_u16(),
                latency_ms = self.now_ms() - started, "request");
        }
        resp
    }

    /// The client's address under the edge policy (see [`crate::edge`]).
    fn client_peer(&self, headers: &http::HeaderMap, peer: Peer) -> Peer {
        Peer {
            ip: crate::edge::client_ip(self.config().trusted_proxy_hops, headers, peer.ip),
        }
    }

    /// The answer for an error the runtime found itself (e.g. a body over
    /// the limit while reading it), in the `shape` of the request's API
    /// (see [`Admitted::shape`]).
    pub fn reject(&self, err: &GatewayError, shape: ErrorShape) -> Response<P> {
        let request_id = self.new_request_id();
        let mut resp = error_response(err, shape, &request_id);
        name_request(resp.headers_mut(), &request_id);
        resp
    }

    async fn route(
        &self,
        req: http::Request<Bytes>,
        peer: Peer,
        request_id: &str,
    ) -> Result<Response<P>, GatewayError> {
        // Decided from the head already when the runtime checked it.
        let route = match req.extensions().get::<Route>() {
            Some(r) => r.clone(),
            None => Route::resolve(req.method(), req.uri().path())?,
        };
        match route {
            Route::Health => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            )),
            Route::Proxy(endpoint) => self.proxy(req, peer, request_id, endpoint).await,
            Route::CountTokens => self.count_tokens(&req, peer).await,
            Route::StoredResponse { id, input_items } => {
                self.stored_route(&req, peer, &id, input_items).await
            }
            Route::Metrics => self.metrics(&req, peer).await,
            Route::Models => self.list_models(&req, peer).await,
            Route::Model(id) => self.get_model(&req, peer, &id).await,
            Route::Mcp { server } => self.mcp(req, peer, server, request_id).await,
            Route::Admin => {
                let path = req.uri().path().trim_end_matches('/').to_owned();
                let rest: Vec<&str> = path.split('/').skip(3).collect();
                self.admin(req, peer, &rest).await
            }
        }
    }
}

impl<P: Ports> Gateway<P> {
    /// `GET /metrics`: the runtime's metrics, for admins only.
    async fn metrics(
        &self,
        req: &http::Request<Bytes>,
        peer: Peer,
    ) -> Result<Response<P>, GatewayError> {
        self.admin_of(req, peer).await?;
        let text = self
            .ports()
            .metrics()
            .ok_or_else(|| RequestError::NotFound("Route /metrics".into()))?;
        let mut resp = http::Response::new(Body::Full(Bytes::from(text)));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(crate::observe::CONTENT_TYPE),
        );
        Ok(resp)
    }
}

/// The key MCP sessions are sealed with: from the operator's secret, else
/// from the bootstrap admin key (the same on every replica configured
/// alike), else random (sessions then live as long as the process).
fn mcp_session_key<P: Ports>(ports: &P, config: &Config) -> crate::mcp::session::SessionKey {
    use crate::mcp::session::SessionKey;
    match (&config.mcp_session_secret, &config.admin_key_hash) {
        (Some(secret), _) => SessionKey::derive(secret.expose().as_bytes()),
        (None, Some(hash)) => SessionKey::derive(hash.expose().as_bytes()),
        (None, None) => {
            let mut random = [0u8; 32];
            ports.fill_random(&mut random);
            SessionKey::derive(&random)
        }
    }
}

/// Whether periodic work last done at `last` is due again at `now_ms`
/// (every `every_ms`), claiming it if so: one caller wins per period.
fn claim_due(last: &AtomicI64, now_ms: i64, every_ms: i64) -> bool {
    let seen = last.load(std::sync::atomic::Ordering::Relaxed);
    now_ms - seen >= every_ms
        && last
            .compare_exchange(
                seen,
                now_ms,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
}

/// A JSON answer.
fn json_response<P: Ports, T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<P> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = http::Response::new(Body::Full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `x-request-id` and, for Anthropic's SDKs, `request-id`.
fn name_request(h: &mut http::HeaderMap, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v.clone());
        h.insert("request-id", v);
    }
}

/// The one place an error becomes a response.
fn error_response<P: Ports>(
    err: &GatewayError,
    shape: ErrorShape,
    request_id: &str,
) -> Response<P> {
    let status = err.status();
    let body = match shape {
        ErrorShape::OpenAi => err.body(),
        ErrorShape::Anthropic => {
            crate::anthropic::error_body(status.as_u16(), &err.message(), request_id)
        }
        ErrorShape::JsonRpc => mcp::http_error_body(status, &err.message()),
    };
    let mut resp = json_response(status, &body);
    let h = resp.headers_mut();
    if let Some(s) = err.retry_after_s() {
        h.insert("retry-after", HeaderValue::from(s));
    }
    if let GatewayError::Limit(l) = err {
        match l.retry_after_ms() {
            Some(ms) => {
                h.insert("retry-after-ms", HeaderValue::from(ms));
            }
            // A spent quota or budget: the SDKs' retries cannot help.
            None => {
                h.insert("x-should-retry", HeaderValue::from_static("false"));
            }
        }
    }
    match err {
        GatewayError::Limit(crate::error::LimitError::TokensLimited {
            limit, reset_ms, ..
        }) => limit_headers(resp.headers_mut(), LimitKind::Tokens, *limit, 0, *reset_ms),
        GatewayError::Limit(crate::error::LimitError::RateLimited {
            limit, reset_ms, ..
        }) => limit_headers(
            resp.headers_mut(),
            LimitKind::Requests,
            *limit,
            0,
            *reset_ms,
        ),
        _ => {}
    }
    resp
}

/// Which of OpenAI's rate-limit header families a limit is told in.
#[derive(Debug, Clone, Copy)]
pub(super) enum LimitKind {
    Requests,
    Tokens,
}

impl LimitKind {
    /// `x-ratelimit-{limit,remaining,reset}-{kind}`, checked at compile
    /// time: they go on every answer.
    fn names(self) -> [http::HeaderName; 3] {
        use http::HeaderName as N;
        const REQUESTS: [N; 3] = [
            N::from_static("x-ratelimit-limit-requests"),
            N::from_static("x-ratelimit-remaining-requests"),
            N::from_static("x-ratelimit-reset-requests"),
        ];
        const TOKENS: [N; 3] = [
            N::from_static("x-ratelimit-limit-tokens"),
            N::from_static("x-ratelimit-remaining-tokens"),
            N::from_static("x-ratelimit-reset-tokens"),
        ];
        match self {
            Self::Requests => REQUESTS,
            Self::Tokens => TOKENS,
        }
    }
}

/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{kind}` headers.
fn limit_headers(
    h: &mut http::HeaderMap,
    kind: LimitKind,
    limit: u32,
    remaining: u32,
    reset_ms: u64,
) {
    let reset = crate::calendar::format_duration(reset_ms);
    let [l, r, t] = kind.names();
    h.insert(l, HeaderValue::from(limit));
    h.insert(r, HeaderValue::from(remaining));
    h.insert(
        t,
        HeaderValue::from_str(&reset).unwrap_or(HeaderValue::from(0)),
    );
}
