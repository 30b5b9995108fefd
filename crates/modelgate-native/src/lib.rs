//! What the native server and the Lambda share: the axum shell around the
//! core and the tokio ports.
//!
//! # Layout
//! - `app`: the axum router (socket IO is the caller's: `listener`
//!   natively, the Lambda runtime on Lambda): client IP, the key checked
//!   from the head, body limit and deadline while reading, core call,
//!   streamed answers settled exactly once, the static admin panel (file
//!   IO).
//! - `listener`: the native server's sockets (network IO): connection cap,
//!   header and idle deadlines, graceful shutdown.
//! - `local`: local MCP servers, children over stdio (process IO).
//! - `upstream`: the upstream HTTP client (network IO), and the local MCP
//!   servers where allowed.
//! - `ports`: the core's ports over it, the SQLite store (file IO), a
//!   limiter of the caller's choice, system clock, OS randomness.

pub mod app;
pub mod listener;
pub mod local;
pub mod metrics;
pub mod otel;
pub mod ports;
pub mod upstream;
