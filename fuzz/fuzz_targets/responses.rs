//! Any bytes as an upstream stream served as the Responses API: through
//! the bridge (as chat SSE) and natively (as Responses events), in any
//! pieces. The client always gets whole events, each named after its
//! `type`, and exactly one terminal event, last; the bridge numbers its
//! events from 0.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use modelgate_core::backend::{NativeResponsesRelay, Relay, SseRelay};
use modelgate_core::codec::SseDecoder;
use modelgate_core::responses::{BridgeRelay, Echo};
use serde_json::{Map, Value};

const TERMINAL: [&str; 3] = ["response.completed", "response.incomplete", "response.failed"];

fn check(out: &[u8], numbered: bool) {
    let mut dec = SseDecoder::new();
    dec.push(out);
    let mut kinds = Vec::new();
    while let Some(ev) = dec.next_event().expect("the gateway writes valid SSE") {
        let data: Value = serde_json::from_str(&ev.data).expect("event data must be JSON");
        let kind = data["type"].as_str().unwrap_or_default().to_owned();
        if numbered {
            assert_eq!(ev.event.as_deref(), Some(kind.as_str()));
            assert_eq!(data["sequence_number"], kinds.len());
        }
        kinds.push(kind);
    }
    assert!(dec.finish().is_none(), "no half event at the end");
    let ends = kinds.iter().filter(|k| TERMINAL.contains(&k.as_str())).count();
    assert_eq!(ends, 1, "exactly one terminal event: {kinds:?}");
    assert!(TERMINAL.contains(&kinds.last().map(String::as_str).unwrap_or_default()));
}

fuzz_target!(|data: &[u8]| {
    let (cut, rest) = data.split_first().unwrap_or((&0, &[]));
    let step = usize::from(cut % 17) + 1;

    let echo = Echo::new(&Map::new(), "req_0123", "m", 0);
    let mut bridge = BridgeRelay::new(Relay::Sse(SseRelay::new(true)), echo);
    let mut out = Vec::new();
    for piece in rest.chunks(step) {
        bridge.feed(piece, &mut out);
    }
    bridge.finish(&mut out);
    assert!(bridge.is_done());
    check(&out, true);

    let mut native = Relay::Responses(NativeResponsesRelay::new("resp_0123".into()));
    let out = common::feed_in_pieces(&mut native, data);
    common::check_client_stream(&native, &out);
    check(&out, false);
});
