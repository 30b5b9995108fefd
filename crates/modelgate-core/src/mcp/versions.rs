//! The protocol versions the gateway speaks, both eras.

pub use super::modern::MODERN;

/// The newest handshake-era version, offered to a client asking for one
/// the gateway does not speak.
pub const LATEST_HANDSHAKE: &str = "2025-11-25";
/// The handshake-era versions (`initialize`, sessions).
pub const HANDSHAKE: [&str; 3] = ["2025-03-26", "2025-06-18", LATEST_HANDSHAKE];
/// Every version served (what `server/discover` lists).
pub const SERVED: [&str; 4] = ["2025-03-26", "2025-06-18", LATEST_HANDSHAKE, MODERN];
