//! ModelGate's core: every behaviour of the gateway, and no IO.
//!
//! OpenAI-compatible clients send requests; the core authenticates the key,
//! admits the request (exact rate limit, quota reservation), resolves the
//! model to a backend, builds the upstream request, relays the answer
//! (transcoding Ollama's NDJSON to OpenAI SSE), and settles usage and quota
//! exactly once. It also serves the admin API.
//!
//! # Layout
//! - [`ports`]: the traits a runtime implements (HTTP client, stores,
//!   limiter, clock, randomness, sleep). **All IO happens behind them**, in
//!   the runtime crates; nothing in this crate opens a socket, reads a file
//!   or a clock, or spawns a task, so it builds for `wasm32-unknown-unknown`.
//! - [`gateway`]: routing and the request phases, the admin API, streamed
//!   responses and their settlement.
//! - [`backend`]: one module per upstream protocol behind [`BackendKind`].
//! - [`codec`]: incremental SSE and NDJSON decoders.
//! - [`request`], [`auth`], [`limiter`], [`resilience`]: validation, keys,
//!   GCRA, retry settings: pure functions driven by the caller's clock.
//! - [`deployment`], [`serving`], [`routing`]: the upstreams serving a
//!   model, and which one serves a request (tiers, load and latency,
//!   ejection).
//! - [`cost`], [`period`], [`observe`]: prices and costs, the calendar
//!   windows of quotas and budgets, metrics and spans.
//!
//! The modules import one another without cycles: [`error`],
//! [`calendar`] and the other leaves at the bottom, [`gateway`] at the
//! top.
//! - [`mcp`]: the MCP gateway's upstream servers.
//! - [`config`]: `MG_*` settings and declarative model files.
//! - [`edge`]: the client-address policy every shell applies.
//! - [`sql`]: the statements of every SQLite-dialect store (SQLite, D1).
//! - [`domain`], [`error`]: records and the one place errors become
//!   OpenAI-shaped answers.

pub mod anthropic;
pub mod auth;
pub mod backend;
pub mod calendar;
pub mod codec;
pub mod config;
pub mod cost;
pub mod deployment;
pub mod domain;
pub mod edge;
pub mod encoding;
pub mod error;
pub mod gateway;
pub mod limiter;
pub mod mcp;
pub mod observe;
pub mod patch;
pub mod period;
pub mod ports;
pub mod request;
pub mod resilience;
pub mod responses;
pub mod routing;
pub mod secret;
pub mod serving;

pub use backend::BackendKind;
pub use config::{Config, ModelSpec, SyncBackend};
pub use gateway::{
    ADMIN_PANEL_HEADERS, Admitted, Body, Credential, ErrorShape, Gateway, Peer, Response,
    ResponseStream, Route,
};
