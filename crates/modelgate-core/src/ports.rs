//! The ports: everything the core needs from the outside world.
//!
//! Each runtime (native server, Worker, Lambda) implements these once and
//! hands them to [`crate::Gateway`]. Futures are `Send` on native targets
//! and not on wasm32, where the Worker's JS-backed types are `!Send`
//! (matrix-rust-sdk's `SendOutsideWasm` pattern, chosen by target, not by
//! feature, so that a workspace build cannot silently drop `Send`).

use std::future::Future;

use bytes::Bytes;

use crate::domain::{
    ApiKey, Ask, Grant, KeyPatch, Lease, Model, ModelPatch, NewKey, NewModel, RecordQuery,
    ResponseSummary, Settlement, StoredResponse, UsageQuery, UsageRecord, UsageRow,
};
use crate::error::StoreError;
use crate::mcp::McpServer;

/// `Send` on native targets, nothing on wasm32.
#[cfg(not(target_family = "wasm"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_family = "wasm"))]
impl<T: ?Sized + Send> MaybeSend for T {}
/// `Send` on native targets, nothing on wasm32.
#[cfg(target_family = "wasm")]
pub trait MaybeSend {}
#[cfg(target_family = "wasm")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` on native targets, nothing on wasm32.
#[cfg(not(target_family = "wasm"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_family = "wasm"))]
impl<T: ?Sized + Sync> MaybeSync for T {}
/// `Sync` on native targets, nothing on wasm32.
#[cfg(target_family = "wasm")]
pub trait MaybeSync {}
#[cfg(target_family = "wasm")]
impl<T: ?Sized> MaybeSync for T {}

/// Why an upstream exchange failed at the transport level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// Could not connect (refused, DNS, TLS handshake).
    Connect,
    /// The transport's own timeout fired.
    Timeout,
    /// The connection broke after it was made (reset, cut body).
    Broken,
}

/// A transport failure. `detail` is for logs only: it may name the upstream.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct TransportError {
    /// What went wrong.
    pub kind: TransportErrorKind,
    /// Free text for the log line, never for the client.
    pub detail: String,
}

/// An upstream response body read chunk by chunk, as it arrives.
pub trait ByteStream: MaybeSend + 'static {
    /// The next chunk, `None` at the end of the body. Must be
    /// cancel-safe: a stream that pings its client drops a pending call and
    /// makes another.
    fn next_chunk(
        &mut self,
    ) -> impl Future<Output = Option<Result<Bytes, TransportError>>> + MaybeSend;
}

/// A local MCP server (stdio): the program and arguments an admin gave
/// it, and its environment (nothing else of the gateway's is passed on).
#[derive(Debug, Clone)]
pub struct LocalCommand {
    /// Which server (one child per server).
    pub server: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Its environment, secrets resolved.
    pub env: Vec<(String, String)>,
    /// How long its start (spawn and handshake) may take, ms.
    pub start_ms: u32,
}

/// Sends one HTTP request upstream. The body of the answer is streamed.
pub trait HttpClient: MaybeSend + MaybeSync + 'static {
    /// The streamed response body.
    type Body: ByteStream;
    /// Send `req` and return once the response head has arrived.
    fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> impl Future<Output = Result<http::Response<Self::Body>, TransportError>> + MaybeSend;
    /// Whether `program` may run as a local MCP server (the operator's
    /// list; runtimes that run no commands: never).
    fn may_run(&self, program: &str) -> bool {
        let _ = program;
        false
    }
    /// Send `req` to the local MCP server `command` runs (started on first
    /// use), answered as a Streamable HTTP server in the handshake era
    /// would answer it.
    fn send_local(
        &self,
        command: LocalCommand,
        req: http::Request<Bytes>,
    ) -> impl Future<Output = Result<http::Response<Self::Body>, TransportError>> + MaybeSend {
        let _ = (command, req);
        std::future::ready(Err(TransportError {
            kind: TransportErrorKind::Connect,
            detail: "this runtime runs no local MCP servers".into(),
        }))
    }
}

/// Keys: lookup for authentication, and the admin's records. What a key
/// has used and reserved is [`Accounting`]'s.
pub trait KeyStore: MaybeSend + MaybeSync + 'static {
    /// The key whose SHA-256 hash (hex) is `hash`, whatever its status.
    fn find_key_by_hash(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + MaybeSend;
    /// Insert a new key. Fails with `Conflict` on a duplicate id or hash.
    fn insert_key(
        &self,
        key: NewKey,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + MaybeSend;
    /// One key by id.
    fn get_key(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + MaybeSend;
    /// All keys, newest first.
    fn list_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + MaybeSend;
    /// Apply `patch`; `None` when there is no such key.
    fn update_key(
        &self,
        id: &str,
        patch: KeyPatch,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + MaybeSend;
}

/// Quota and budget accounting: reservations, settlements and their
/// leases. A store that keeps the counters in the key's record implements
/// it itself; counters kept elsewhere (Redis) implement it in front of a
/// store, which stays the durable record of usage.
pub trait Accounting: MaybeSend + MaybeSync + 'static {
    /// Atomically reserve, on the key `lease.key_id`, tokens of its quota
    /// and money of its budget: of each as much as is left, up to the
    /// ask's maximum, provided at least its minimum is; `None` (nothing
    /// reserved) when either falls short. A key without a quota (budget)
    /// gets the maximum tokens (money). A counter whose stored window is
    /// earlier than the ask's counts from zero, and its window becomes the
    /// ask's (never an earlier one). `lease` (with both amounts) is
    /// written in the same transaction.
    fn reserve(
        &self,
        lease: &Lease,
        ask: &Ask,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + MaybeSend;
    /// [`Self::reserve`] of tokens only, without periods: the amount.
    fn reserve_quota(
        &self,
        lease: &Lease,
        min: i64,
        max: i64,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + MaybeSend {
        let ask = Ask {
            tokens: (min, max),
            ..Ask::default()
        };
        async move { Ok(self.reserve(lease, &ask).await?.map(|g| g.tokens)) }
    }
    /// In one transaction: release both reservations, charge the real
    /// usage and cost (each to its counter if the window it was reserved
    /// in is still the counter's; an earlier window's charge is not carried
    /// into a later one), write the usage record, touch `last_used_at`,
    /// end the lease.
    fn settle(
        &self,
        settlement: &Settlement,
    ) -> impl Future<Output = Result<(), StoreError>> + MaybeSend;
    /// Outstanding leases, oldest first; with `expired_by` (epoch ms) only
    /// those expired by then.
    fn leases(
        &self,
        expired_by: Option<i64>,
    ) -> impl Future<Output = Result<Vec<Lease>, StoreError>> + MaybeSend;
    /// A key's record was written by the admin: created, or its limits,
    /// periods or figures changed. `reset` (quota, budget): the record's
    /// used figure and window replace the counter's. Counters kept in the
    /// record need nothing.
    fn key_written(
        &self,
        key: &ApiKey,
        reset: (bool, bool),
    ) -> impl Future<Output = Result<(), StoreError>> + MaybeSend {
        let _ = (key, reset);
        async { Ok(()) }
    }
    /// `keys` with what they have used and reserved as it counts now (what
    /// the admin API shows); the records' own figures when they hold the
    /// counters.
    fn live(&self, keys: Vec<ApiKey>) -> impl Future<Output = Vec<ApiKey>> + MaybeSend {
        async { keys }
    }
}

impl<T: Accounting> Accounting for std::sync::Arc<T> {
    fn reserve(
        &self,
        lease: &Lease,
        ask: &Ask,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + MaybeSend {
        (**self).reserve(lease, ask)
    }
    fn settle(
        &self,
        settlement: &Settlement,
    ) -> impl Future<Output = Result<(), StoreError>> + MaybeSend {
        (**self).settle(settlement)
    }
    fn leases(
        &self,
        expired_by: Option<i64>,
    ) -> impl Future<Output = Result<Vec<Lease>, StoreError>> + MaybeSend {
        (**self).leases(expired_by)
    }
    fn key_written(
        &self,
        key: &ApiKey,
        reset: (bool, bool),
    ) -> impl Future<Output = Result<(), StoreError>> + MaybeSend {
        (**self).key_written(key, reset)
    }
    fn live(&self, keys: Vec<ApiKey>) -> impl Future<Output = Vec<ApiKey>> + MaybeSend {
        (**self).live(keys)
    }
}

/// Models: the public name to backend mapping.
pub trait ModelStore: MaybeSend + MaybeSync + 'static {
    /// The model with this public name.
    fn find_model(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Model>, StoreError>> + MaybeSend;
    /// One model by id.
    fn get_model(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Model>, StoreError>> + MaybeSend;
    /// All models, by name.
    fn list_models(&self) -> impl Future<Output = Result<Vec<Model>, StoreError>> + MaybeSend;
    /// Insert; `Conflict` when the name or id exists.
    fn insert_model(
        &self,
        model: NewModel,
    ) -> impl Future<Output = Result<Model, StoreError>> + MaybeSend;
    /// Apply `patch`; `None` when there is no such model.
    fn update_model(
        &self,
        id: &str,
        patch: ModelPatch,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<Model>, StoreError>> + MaybeSend;
    /// Delete; `false` when there was no such model.
    fn delete_model(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + MaybeSend;
}

/// Usage reporting (records are written by [`Accounting::settle`]).
pub trait UsageStore: MaybeSend + MaybeSync + 'static {
    /// Totals per day, key and model over the query's range.
    fn usage_by_day(
        &self,
        query: &UsageQuery,
    ) -> impl Future<Output = Result<Vec<UsageRow>, StoreError>> + MaybeSend;
    /// The records themselves, newest first (by `created_at`, then
    /// request id), at most `query.limit`.
    fn usage_records(
        &self,
        query: &RecordQuery,
    ) -> impl Future<Output = Result<Vec<UsageRecord>, StoreError>> + MaybeSend;
}

/// Stored Responses (conversation state), each under its id.
pub trait ResponseStore: MaybeSend + MaybeSync + 'static {
    /// Keep `response` (replacing one with the same id).
    fn put_response(
        &self,
        response: &StoredResponse,
    ) -> impl Future<Output = Result<(), StoreError>> + MaybeSend;
    /// The response with this id, unless it expired by `now_ms`.
    fn get_response(
        &self,
        id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<StoredResponse>, StoreError>> + MaybeSend;
    /// Key `key_id`'s responses not expired by `now_ms`, newest first, at
    /// most `limit`.
    fn list_responses(
        &self,
        key_id: &str,
        now_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ResponseSummary>, StoreError>> + MaybeSend;
    /// Delete; `false` when there was no such response.
    fn delete_response(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + MaybeSend;
    /// Delete up to `limit` responses expired by `now_ms`, by an index of
    /// expiry (never a scan); how many went. Stores whose engine expires
    /// items itself (DynamoDB's TTL) may delete none.
    fn purge_responses(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + MaybeSend;
}

/// Upstream MCP servers, each under its id and its unique name.
pub trait McpServerStore: MaybeSend + MaybeSync + 'static {
    /// All servers, by name.
    fn list_mcp_servers(
        &self,
    ) -> impl Future<Output = Result<Vec<McpServer>, StoreError>> + MaybeSend;
    /// One server by id.
    fn get_mcp_server(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<McpServer>, StoreError>> + MaybeSend;
    /// Insert; `Conflict` when the name or id exists.
    fn insert_mcp_server(
        &self,
        server: &McpServer,
    ) -> impl Future<Output = Result<(), StoreError>> + MaybeSend;
    /// Replace `old` by `new` (the same id) if it is still as `old` was
    /// read (its `updated_at`): `false` when it changed or went meanwhile;
    /// `Conflict` when the new name is taken.
    fn replace_mcp_server(
        &self,
        old: &McpServer,
        new: &McpServer,
    ) -> impl Future<Output = Result<bool, StoreError>> + MaybeSend;
    /// Delete; `false` when there was no such server.
    fn delete_mcp_server(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + MaybeSend;
}

/// A store that keeps everything the gateway persists, its counters too.
pub trait Store:
    KeyStore + ModelStore + UsageStore + ResponseStore + McpServerStore + Accounting
{
}
impl<T: KeyStore + ModelStore + UsageStore + ResponseStore + McpServerStore + Accounting> Store
    for T
{
}

/// What a rate limiter answers for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may go ahead (and was counted).
    pub allowed: bool,
    /// Requests still allowed right now after this one.
    pub remaining: u32,
    /// Milliseconds until the limit is back to its full allowance.
    pub reset_ms: u64,
    /// When refused: milliseconds until one request would be allowed.
    pub retry_after_ms: u64,
}

/// Exact per-minute limits (GCRA; see [`crate::limiter`]), each on a
/// subject the gateway names (a key's requests, its tokens, its requests
/// on one model, ...).
pub trait RateLimiter: MaybeSend + MaybeSync + 'static {
    /// Take `cost` units of `subject`'s `per_minute` allowance (at least 1;
    /// the gateway refuses 0 itself), atomically; a refused request takes
    /// nothing.
    fn acquire(
        &self,
        subject: &str,
        per_minute: u32,
        cost: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<RateDecision, StoreError>> + MaybeSend;
    /// Give back `units` taken by [`Self::acquire`] and not used.
    fn refund(
        &self,
        subject: &str,
        per_minute: u32,
        units: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + MaybeSend;
}

/// A store that keeps both a limiter's state and quota counters, and so
/// can take a request's rate step with its reservation in one round trip
/// (what a runtime's [`Ports::step_and_reserve`] may use).
pub trait StepAndReserve: MaybeSend + MaybeSync + 'static {
    /// As [`Ports::step_and_reserve`].
    fn step_and_reserve(
        &self,
        subject: &str,
        per_minute: u32,
        now_ms: i64,
        lease: &Lease,
        ask: &Ask,
    ) -> impl Future<Output = Result<(RateDecision, Option<Grant>), StoreError>> + MaybeSend;
}

/// [`Ports::step_and_reserve`] one step after the other: one request of
/// `subject`'s `per_minute` allowance at `now_ms` on `limiter`, then, if
/// allowed, the reservation on `accounts`.
pub async fn step_then_reserve(
    limiter: &impl RateLimiter,
    accounts: &impl Accounting,
    (subject, per_minute, now_ms): (&str, u32, i64),
    lease: &Lease,
    ask: &Ask,
) -> Result<(RateDecision, Option<Grant>), StoreError> {
    let decision = limiter.acquire(subject, per_minute, 1, now_ms).await?;
    if !decision.allowed {
        return Ok((decision, None));
    }
    Ok((decision, accounts.reserve(lease, ask).await?))
}

/// Everything a runtime provides, bundled for [`crate::Gateway`].
pub trait Ports: MaybeSend + MaybeSync + 'static {
    /// Upstream HTTP client.
    type Http: HttpClient;
    /// Keys, models, usage.
    type Store: Store;
    /// Quota and budget counters: the store's, or kept elsewhere in front
    /// of it.
    type Accounts: Accounting;
    /// Request limiter.
    type Limiter: RateLimiter;
    /// The HTTP client.
    fn http(&self) -> &Self::Http;
    /// The store.
    fn store(&self) -> &Self::Store;
    /// The counters.
    fn accounts(&self) -> &Self::Accounts;
    /// The limiter.
    fn limiter(&self) -> &Self::Limiter;
    /// Take one request of `subject`'s `per_minute` allowance and, only if
    /// that is allowed, reserve `ask` as [`Accounting::reserve`] does: the
    /// decision and the grant (`None`: nothing reserved). One after the
    /// other by default; a runtime whose limiter and counters live in one
    /// store makes both one round trip to it.
    fn step_and_reserve(
        &self,
        subject: &str,
        per_minute: u32,
        now_ms: i64,
        lease: &Lease,
        ask: &Ask,
    ) -> impl Future<Output = Result<(RateDecision, Option<Grant>), StoreError>> + MaybeSend {
        step_then_reserve(
            self.limiter(),
            self.accounts(),
            (subject, per_minute, now_ms),
            lease,
            ask,
        )
    }
    /// Wall-clock time, milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A monotonic clock in microseconds, for measuring the gateway's own
    /// time (only differences mean anything). Runtimes whose clock is
    /// coarser keep this default.
    fn monotonic_us(&self) -> u64 {
        u64::try_from(self.now_ms())
            .unwrap_or(0)
            .saturating_mul(1000)
    }
    /// Fill `buf` with cryptographically secure random bytes.
    fn fill_random(&self, buf: &mut [u8]);
    /// Resolve after `ms` milliseconds.
    fn sleep(&self, ms: u64) -> impl Future<Output = ()> + MaybeSend;
    /// Run `task` detached from the request that started it, to completion
    /// as far as the runtime allows (a tokio task natively, `spawn_local` on
    /// Workers): how an admitted request is settled when whatever was
    /// serving it is dropped first (the client went away).
    fn spawn(&self, task: impl Future<Output = ()> + MaybeSend + 'static);
    /// A deployment secret by name (process environment natively, `wrangler
    /// secret` on Workers): what a model's `api_key` of `env:NAME` refers to.
    fn secret(&self, name: &str) -> Option<String>;
    /// The metrics in the Prometheus text format, where the runtime keeps
    /// them (see [`crate::observe`]); `None`: `GET /metrics` is a 404.
    fn metrics(&self) -> Option<String> {
        None
    }
    /// Make `span` (a request's) continue the trace the client's W3C
    /// `traceparent` in `headers` names, where the runtime exports traces.
    fn adopt_trace(&self, span: &tracing::Span, headers: &http::HeaderMap) {
        let _ = (span, headers);
    }
    /// Rename a started span (its name holds the model once it is known).
    fn name_span(&self, span: &tracing::Span, name: String) {
        let _ = (span, name);
    }
    /// The current span's W3C `traceparent`, where the runtime exports
    /// traces (an MCP request carries it in `_meta` as well as in its
    /// headers).
    fn traceparent(&self) -> Option<String> {
        None
    }
}
