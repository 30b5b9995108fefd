//! What the native server and the Lambda share: the axum shell around the
//! core and the tokio ports.
//!
//! # Layout
//! - `app`: the axum router (socket IO is the caller's: `axum::serve`
//!   natively, the Lambda runtime on Lambda): body limit while reading,
//!   client IP, core call, streamed answers settled exactly once, the
//!   static admin panel (file IO).
//! - `ports`: reqwest upstream client (network IO), SQLite store (file IO),
//!   a limiter of the caller's choice, system clock, OS randomness.

pub mod app;
pub mod ports;
