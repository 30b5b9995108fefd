//! Any bytes as an MCP request body, as a session id and as routing
//! headers: reading them never panics; what reads as a request keeps its id
//! as the client sent it; a session id the gateway did not seal never
//! opens; a header value decodes to what it encodes, and a request passes
//! the stateless era's checks only when its headers say what it says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_core::mcp::jsonrpc::{Message, parse};
use modelgate_core::mcp::modern::{self, MODERN, Routing};
use modelgate_core::mcp::session::{Session, SessionKey};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(Message::Request { id, method, params }) = parse(data) {
        assert!(id.is_string() || id.is_number());
        let name = modern::name_param(&method).and_then(|m| params.get(m)?.as_str());
        let routing = Routing {
            version: Some(MODERN),
            method: Some(&method),
            name,
            duplicated: None,
        };
        if let Ok(version) = modern::check(&routing, &method, &params, &[MODERN]) {
            assert_eq!(version, MODERN);
        }
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (out, _) = modern::outgoing(&body, MODERN, None);
        assert!(out.pointer("/params/_meta").is_some_and(Value::is_object));
    }
    let key = SessionKey::derive(b"fuzz");
    assert!(Session::open(&text, &key).is_none());
    assert_eq!(
        modern::decode_header_value(&modern::encode_header_value(&text)).as_deref(),
        Some(&*text)
    );
    let _ = modern::decode_header_value(&text);
});
