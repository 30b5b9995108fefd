//! The tokio ports: reqwest for upstream HTTP, SQLite for the store, a
//! limiter of the caller's choice (in-process natively, Redis on Lambda),
//! the system clock and OS randomness.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use modelgate_core::domain::{Ask, Grant, Lease};
use modelgate_core::error::StoreError;
use modelgate_core::limiter::MemoryLimiter;
use modelgate_core::ports::{
    Accounting, ByteStream, HttpClient, Ports, RateDecision, RateLimiter, StepAndReserve, Store,
    TransportError, TransportErrorKind, step_then_reserve,
};
use modelgate_core::secret::Secret;
use modelgate_sqlite::SqliteStore;
use tokio_util::task::TaskTracker;

/// Upstream HTTP over a pooled reqwest client.
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
    client: reqwest::Client,
    /// reqwest's URL of each upstream URI: the same few per deployment,
    /// parsed once rather than on every request (a parse was ~2% of a
    /// request's CPU, most of it the host's IDNA check).
    urls: Arc<Mutex<HashMap<http::Uri, reqwest::Url>>>,
}

/// Upstream URLs kept at most; past it the map starts over.
const MAX_URLS: usize = 1024;

/// The system resolver, keeping only addresses the edge policy allows: a
/// name that resolves to a metadata service (or is rebound to one) is never
/// called, whatever the model's URL said.
#[derive(Debug, Clone, Copy)]
struct EgressResolver {
    allow_link_local: bool,
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_link_local;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found
                .filter(|a| modelgate_core::edge::upstream_ip_allowed(a.ip(), allow))
                .collect();
            if kept.is_empty() {
                return Err("no address the egress policy allows".into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl ReqwestHttp {
    /// A pooled client with `TCP_NODELAY` and a connect timeout; the overall
    /// timeout is the gateway's (it also covers the streamed body). It
    /// follows no redirect: reqwest would carry `x-api-key` (not
    /// `Authorization`) to another host, and the core treats a 3xx as an
    /// upstream error. Names resolve only to addresses
    /// [`modelgate_core::edge::upstream_ip_allowed`] lets through.
    pub fn new(allow_link_local: bool) -> Result<Self, reqwest::Error> {
        // rustls needs one crypto provider; `ring` builds with cc only.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(EgressResolver { allow_link_local }))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self {
            client,
            urls: Arc::default(),
        })
    }

    /// reqwest's URL for `uri`, from the map when it was seen before.
    fn url(&self, uri: &http::Uri) -> Result<reqwest::Url, String> {
        if let Some(url) = self.urls.lock().ok().and_then(|m| m.get(uri).cloned()) {
            return Ok(url);
        }
        let url = reqwest::Url::parse(&uri.to_string()).map_err(|e| e.to_string())?;
        if let Ok(mut m) = self.urls.lock() {
            if m.len() >= MAX_URLS {
                m.clear();
            }
            m.insert(uri.clone(), url.clone());
        }
        Ok(url)
    }
}

fn transport(e: reqwest::Error, during_body: bool) -> TransportError {
    let kind = if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if during_body {
        TransportErrorKind::Broken
    } else {
        TransportErrorKind::Connect
    };
    // The detail is logged: it says what failed, never where (reqwest's
    // `Display` names the URL unless told not to). The log line names the
    // endpoint by model and position instead.
    TransportError {
        kind,
        detail: format!("{:#}", e.without_url()),
    }
}

/// A streamed reqwest response body.
#[derive(Debug)]
pub struct ReqwestBody(reqwest::Response);

impl ByteStream for ReqwestBody {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, TransportError>> {
        self.0
            .chunk()
            .await
            .map_err(|e| transport(e, true))
            .transpose()
    }
}

impl HttpClient for ReqwestHttp {
    type Body = ReqwestBody;

    async fn send(
        &self,
        mut req: http::Request<Bytes>,
    ) -> Result<http::Response<ReqwestBody>, TransportError> {
        crate::otel::inject(req.headers_mut());
        let (head, body) = req.into_parts();
        let url = self.url(&head.uri).map_err(|e| TransportError {
            kind: TransportErrorKind::Connect,
            detail: format!("upstream URL: {e}"),
        })?;
        let mut req = reqwest::Request::new(head.method, url);
        *req.headers_mut() = head.headers;
        *req.version_mut() = head.version;
        *req.body_mut() = Some(body.into());
        let resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| transport(e, false))?;
        let mut out = http::Response::builder().status(resp.status());
        if let Some(h) = out.headers_mut() {
            h.extend(resp.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out.body(ReqwestBody(resp)).map_err(|e| TransportError {
            kind: TransportErrorKind::Broken,
            detail: e.to_string(),
        })
    }
}

/// What a request's rate step and reservation come to: the decision and
/// the grant (see [`Ports::step_and_reserve`]).
type Stepped<'a> = BoxFuture<'a, Result<(RateDecision, Option<Grant>), StoreError>>;

/// The function of a [`Fold`].
trait FoldFn: for<'a> Fn(&'a str, u32, i64, &'a Lease, &'a Ask) -> Stepped<'a> + Send + Sync {}

impl<F> FoldFn for F where
    F: for<'a> Fn(&'a str, u32, i64, &'a Lease, &'a Ask) -> Stepped<'a> + Send + Sync
{
}

/// A store's own [`Ports::step_and_reserve`] in one round trip, for a
/// store that is both the limiter and the counters.
#[derive(Clone)]
pub struct Fold(Arc<dyn FoldFn>);

impl Fold {
    /// `store`'s [`StepAndReserve`].
    pub fn of<T: StepAndReserve>(store: Arc<T>) -> Self {
        Self(Arc::new(move |subject, per_minute, now_ms, lease, ask| {
            let store = Arc::clone(&store);
            Box::pin(async move {
                store
                    .step_and_reserve(subject, per_minute, now_ms, lease, ask)
                    .await
            })
        }))
    }
}

impl std::fmt::Debug for Fold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fold")
    }
}

/// Everything the core needs on tokio: the store `S`, its counters `A`
/// (the store's own, or Redis's in front of it) and the rate limiter `L`.
#[derive(Debug)]
pub struct NativePorts<S = SqliteStore, A = Arc<S>, L = MemoryLimiter> {
    http: ReqwestHttp,
    store: Arc<S>,
    accounts: A,
    limiter: L,
    fold: Option<Fold>,
    secrets: HashMap<String, Secret>,
    detached: TaskTracker,
}

impl NativePorts {
    /// The native server's embedded default: SQLite, its own counters, the
    /// in-process limiter.
    pub fn new(http: ReqwestHttp, store: SqliteStore) -> Self {
        let store = Arc::new(store);
        Self::compose(http, Arc::clone(&store), store, MemoryLimiter::new())
    }
}

impl<S: Store, L: RateLimiter> NativePorts<S, Arc<S>, L> {
    /// A store that keeps its own counters, with a limiter (Redis, or the
    /// store's statement: shared by many instances).
    pub fn with_limiter(http: ReqwestHttp, store: S, limiter: L) -> Self {
        let store = Arc::new(store);
        Self::compose(http, Arc::clone(&store), store, limiter)
    }
}

impl<S: Store, A: Accounting, L: RateLimiter> NativePorts<S, A, L> {
    /// Ports from their parts: `accounts` are usually `store` itself, or
    /// counters in front of it.
    pub fn compose(http: ReqwestHttp, store: Arc<S>, accounts: A, limiter: L) -> Self {
        Self {
            http,
            store,
            accounts,
            limiter,
            fold: None,
            secrets: HashMap::new(),
            detached: TaskTracker::new(),
        }
    }

    /// Detached work (settlements of abandoned requests): a server waits
    /// for it before it exits.
    pub fn detached(&self) -> &TaskTracker {
        &self.detached
    }

    /// Take a request's rate step and its reservation with `fold` (one
    /// round trip), for a limiter that keeps its state in the counters'
    /// store.
    pub fn with_fold(mut self, fold: Fold) -> Self {
        self.fold = Some(fold);
        self
    }

    /// Secrets looked up before the environment (e.g. loaded from AWS
    /// Secrets Manager at start).
    pub fn with_secrets(mut self, secrets: HashMap<String, String>) -> Self {
        self.secrets = secrets.into_iter().map(|(k, v)| (k, v.into())).collect();
        self
    }
}

impl<S: Store, A: Accounting, L: RateLimiter> Ports for NativePorts<S, A, L> {
    type Http = ReqwestHttp;
    type Store = S;
    type Accounts = A;
    type Limiter = L;

    fn http(&self) -> &ReqwestHttp {
        &self.http
    }

    fn store(&self) -> &S {
        &self.store
    }

    fn accounts(&self) -> &A {
        &self.accounts
    }

    fn limiter(&self) -> &L {
        &self.limiter
    }

    async fn step_and_reserve(
        &self,
        subject: &str,
        per_minute: u32,
        now_ms: i64,
        lease: &Lease,
        ask: &Ask,
    ) -> Result<(RateDecision, Option<Grant>), StoreError> {
        match &self.fold {
            Some(Fold(f)) => f(subject, per_minute, now_ms, lease, ask).await,
            None => {
                let rate = (subject, per_minute, now_ms);
                step_then_reserve(&self.limiter, &self.accounts, rate, lease, ask).await
            }
        }
    }

    fn now_ms(&self) -> i64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }

    fn monotonic_us(&self) -> u64 {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let since = EPOCH.get_or_init(std::time::Instant::now).elapsed();
        u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // Without OS randomness no key may be issued: stop rather than
        // hand out guessable keys.
        if let Err(e) = os_random(buf) {
            panic!("the operating system's random number generator failed: {e}");
        }
    }

    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.detached.spawn(task);
    }

    fn metrics(&self) -> Option<String> {
        crate::metrics::render()
    }

    fn adopt_trace(&self, span: &tracing::Span, headers: &http::HeaderMap) {
        crate::otel::adopt(span, headers);
    }

    fn name_span(&self, span: &tracing::Span, name: String) {
        crate::otel::rename(span, name);
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.secrets
            .get(name)
            .map(|s| s.expose().to_owned())
            .or_else(|| std::env::var(name).ok())
    }
}

/// Bytes of the OS's random number generator, fetched [`RANDOM_POOL`] at a
/// time per thread: one `getrandom` call for ~20 request ids rather than
/// one each. Every byte is handed out once and wiped from the pool as it
/// is; the process never forks, so no two copies of a pool exist.
fn os_random(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    thread_local! {
        static POOL: RefCell<([u8; RANDOM_POOL], usize)> =
            const { RefCell::new(([0; RANDOM_POOL], RANDOM_POOL)) };
    }
    if buf.len() > RANDOM_POOL {
        return getrandom::fill(buf);
    }
    POOL.with_borrow_mut(|(pool, used)| {
        if RANDOM_POOL - *used < buf.len() {
            getrandom::fill(pool)?;
            *used = 0;
        }
        let taken = &mut pool[*used..*used + buf.len()];
        buf.copy_from_slice(taken);
        taken.fill(0);
        *used += buf.len();
        Ok(())
    })
}

/// See [`os_random`].
const RANDOM_POOL: usize = 256;

#[cfg(test)]
mod tests {
    use reqwest::dns::Resolve;

    use super::{EgressResolver, MAX_URLS, RANDOM_POOL, ReqwestHttp, os_random};

    #[test]
    fn pooled_random_bytes_are_handed_out_once() {
        // 12-byte request ids across several refills of the pool, and a
        // request larger than the pool: no two alike, none all zero (a
        // wiped byte handed out again would show as a repeat of zeros).
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * RANDOM_POOL / 12 {
            let mut id = [0u8; 12];
            os_random(&mut id).unwrap();
            assert_ne!(id, [0; 12]);
            assert!(seen.insert(id), "a repeated id");
        }
        let mut big = [0u8; RANDOM_POOL + 1];
        os_random(&mut big).unwrap();
        assert!(big.iter().any(|b| *b != 0));
    }

    #[test]
    fn upstream_urls_are_parsed_once_each_and_kept_bounded() {
        let http = ReqwestHttp::new(false).unwrap();
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        let a = http
            .url(&uri("http://127.0.0.1:9/v1/chat/completions"))
            .unwrap();
        assert_eq!(a.as_str(), "http://127.0.0.1:9/v1/chat/completions");
        let again = http
            .url(&uri("http://127.0.0.1:9/v1/chat/completions"))
            .unwrap();
        assert_eq!(again, a);
        let q = http
            .url(&uri("http://127.0.0.1:9/v1/chat/completions?a=1"))
            .unwrap();
        assert_eq!(q.query(), Some("a=1"), "the query is part of the key");
        assert_eq!(http.urls.lock().unwrap().len(), 2);
        for port in 0..MAX_URLS {
            http.url(&uri(&format!("http://127.0.0.1:{port}/")))
                .unwrap();
        }
        assert!(http.urls.lock().unwrap().len() <= MAX_URLS);
    }

    #[tokio::test]
    async fn the_resolver_drops_addresses_the_edge_policy_refuses() {
        let strict = EgressResolver {
            allow_link_local: false,
        };
        let name = |s: &str| s.parse().unwrap();
        assert!(strict.resolve(name("169.254.169.254")).await.is_err());
        let local: Vec<_> = strict.resolve(name("localhost")).await.unwrap().collect();
        assert!(local.iter().all(|a| a.ip().is_loopback()) && !local.is_empty());
        let open = EgressResolver {
            allow_link_local: true,
        };
        assert!(open.resolve(name("169.254.169.254")).await.is_ok());
    }

    #[tokio::test]
    async fn transport_errors_name_no_address() {
        let http = super::ReqwestHttp::new(false).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let req = |url: String| http::Request::post(url).body(bytes::Bytes::new()).unwrap();
        for url in [
            format!("http://127.0.0.1:{port}/v1/chat/completions"),
            "http://metadata.google.internal:8080/v1/x".to_owned(),
        ] {
            let e = modelgate_core::ports::HttpClient::send(&http, req(url.clone()))
                .await
                .unwrap_err();
            for part in [port.to_string().as_str(), "127.0.0.1", "metadata", "/v1/"] {
                assert!(!e.detail.contains(part), "{url}: {}", e.detail);
            }
        }
    }
}
