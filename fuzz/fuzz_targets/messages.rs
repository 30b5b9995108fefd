//! Any bytes as an upstream chat stream served as Anthropic's Messages API,
//! in any pieces, ended or broken off: the client always gets whole events,
//! each named after its `type`; `message_start` first; blocks one at a
//! time, indexed 0, 1, ... in start order, deltas only to the open block;
//! and the stream ends with `message_delta` + `message_stop` or one `error`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_core::anthropic::{Echo, MessagesRelay};
use modelgate_core::backend::{Relay, SseRelay};
use modelgate_core::codec::SseDecoder;
use serde_json::Value;

fn check(out: &[u8]) {
    let mut dec = SseDecoder::new();
    dec.push(out);
    let mut kinds = Vec::new();
    let mut open: Option<u64> = None;
    let mut next = 0;
    while let Some(ev) = dec.next_event().expect("the gateway writes valid SSE") {
        let data: Value = serde_json::from_str(&ev.data).expect("event data must be JSON");
        let kind = data["type"].as_str().unwrap_or_default().to_owned();
        assert_eq!(ev.event.as_deref(), Some(kind.as_str()));
        match kind.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "one block at a time");
                assert_eq!(data["index"], next);
                open = Some(next);
                next += 1;
            }
            "content_block_delta" => assert_eq!(Some(&data["index"]), open.map(Value::from).as_ref()),
            "content_block_stop" => assert_eq!(Some(&data["index"]), open.take().map(Value::from).as_ref()),
            "message_delta" => assert!(open.is_none(), "blocks stopped before the end"),
            _ => {}
        }
        kinds.push(kind);
    }
    assert!(dec.finish().is_none(), "no half event at the end");
    let last = kinds.last().map(String::as_str).unwrap_or_default();
    if last == "error" {
        assert_eq!(kinds.iter().filter(|k| *k == "error").count(), 1);
    } else {
        assert_eq!(kinds.first().map(String::as_str), Some("message_start"), "{kinds:?}");
        assert_eq!(last, "message_stop", "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "message_start").count(), 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let (cut, rest) = data.split_first().unwrap_or((&0, &[]));
    let step = usize::from(cut % 17) + 1;
    let echo = Echo::new("req_0123", "m", vec!["STOP".into()]);
    let mut relay = MessagesRelay::new(Relay::Sse(SseRelay::new(true)), echo);
    let mut out = Vec::new();
    for (i, piece) in rest.chunks(step).enumerate() {
        relay.feed(piece, &mut out);
        if cut & 0x80 != 0 && i % 5 == 4 {
            relay.ping(&mut out);
        }
    }
    if cut & 0x40 != 0 {
        relay.fail("upstream_stream_broken", "broken", &mut out);
    } else {
        relay.finish(&mut out);
    }
    assert!(relay.is_done());
    check(&out);
});
