//! Any bytes as an MCP request body and as a session id: reading them never
//! panics; what reads as a request keeps its id as the client sent it; a
//! session id the gateway did not seal never opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_core::mcp::jsonrpc::{Message, parse};
use modelgate_core::mcp::session::{Session, SessionKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(Message::Request { id, .. }) = parse(data) {
        assert!(id.is_string() || id.is_number());
    }
    let key = SessionKey::derive(b"fuzz");
    assert!(Session::open(&String::from_utf8_lossy(data), &key).is_none());
});
