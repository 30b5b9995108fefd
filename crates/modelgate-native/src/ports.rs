//! The tokio ports: hyper for upstream HTTP, SQLite for the store, a
//! limiter of the caller's choice (in-process natively, Redis on Lambda),
//! the system clock and OS randomness.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use modelgate_core::domain::{Ask, Grant, Lease};
use modelgate_core::error::StoreError;
use modelgate_core::limiter::MemoryLimiter;
use modelgate_core::ports::{
    Accounting, Ports, RateDecision, RateLimiter, StepAndReserve, Store, step_then_reserve,
};
use modelgate_core::secret::Secret;
use modelgate_sqlite::SqliteStore;
use tokio_util::task::TaskTracker;

use crate::upstream::UpstreamHttp;

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

/// A clock other than the system's: milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Everything the core needs on tokio: the store `S`, its counters `A`
/// (the store's own, or Redis's in front of it) and the rate limiter `L`.
#[derive(Debug)]
pub struct NativePorts<S = SqliteStore, A = Arc<S>, L = MemoryLimiter> {
    http: UpstreamHttp,
    store: Arc<S>,
    accounts: A,
    limiter: L,
    fold: Option<Fold>,
    secrets: HashMap<String, Secret>,
    detached: TaskTracker,
    clock: Option<ClockFn>,
}

/// A [`Clock`] that shows in `Debug`.
#[derive(Clone)]
struct ClockFn(Clock);

impl std::fmt::Debug for ClockFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl NativePorts {
    /// The native server's embedded default: SQLite, its own counters, the
    /// in-process limiter.
    pub fn new(http: UpstreamHttp, store: SqliteStore) -> Self {
        let store = Arc::new(store);
        Self::compose(http, Arc::clone(&store), store, MemoryLimiter::new())
    }
}

impl<S: Store, L: RateLimiter> NativePorts<S, Arc<S>, L> {
    /// A store that keeps its own counters, with a limiter (Redis, or the
    /// store's statement: shared by many instances).
    pub fn with_limiter(http: UpstreamHttp, store: S, limiter: L) -> Self {
        let store = Arc::new(store);
        Self::compose(http, Arc::clone(&store), store, limiter)
    }
}

impl<S: Store, A: Accounting, L: RateLimiter> NativePorts<S, A, L> {
    /// Ports from their parts: `accounts` are usually `store` itself, or
    /// counters in front of it.
    pub fn compose(http: UpstreamHttp, store: Arc<S>, accounts: A, limiter: L) -> Self {
        Self {
            http,
            store,
            accounts,
            limiter,
            fold: None,
            secrets: HashMap::new(),
            detached: TaskTracker::new(),
            clock: None,
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

    /// Read the time from `clock` instead of the system's (tests that
    /// advance time themselves).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(ClockFn(clock));
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
    type Http = UpstreamHttp;
    type Store = S;
    type Accounts = A;
    type Limiter = L;

    fn http(&self) -> &UpstreamHttp {
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
        if let Some(ClockFn(clock)) = &self.clock {
            return clock();
        }
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

    fn traceparent(&self) -> Option<String> {
        let mut headers = http::HeaderMap::new();
        crate::otel::inject(&mut headers);
        let value = headers.get("traceparent")?.to_str().ok()?;
        Some(value.to_owned())
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
    use super::{RANDOM_POOL, os_random};

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
}
