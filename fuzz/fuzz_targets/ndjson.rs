//! Any bytes as an Ollama NDJSON upstream stream, in any pieces: transcoded
//! to OpenAI SSE or ended with an error event, never a panic.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use modelgate_core::BackendKind;
use modelgate_core::backend::UpstreamCall;
use modelgate_core::request::Endpoint;

fuzz_target!(|data: &[u8]| {
    let call = UpstreamCall {
        endpoint: if data.len() % 2 == 0 { Endpoint::Chat } else { Endpoint::Completion },
        body: serde_json::Map::new(),
        public_model: "local".into(),
        request_id: "req-fuzz".into(),
        stream: true,
        client_include_usage: data.len() % 3 == 0,
        upstream_include_usage: true,
        injected_max_tokens: None,
        anthropic_headers: Vec::new(),
    };
    let mut relay = BackendKind::Ollama.relay(&call, 1_700_000_000);
    let out = common::feed_in_pieces(&mut relay, data);
    common::check_client_stream(&relay, &out);
});
