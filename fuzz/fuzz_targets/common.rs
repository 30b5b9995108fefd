//! Shared by the stream targets: feed the input in pieces (the first byte
//! picks where to cut), finish, and check what the client would receive.

use modelgate_core::backend::Relay;
use modelgate_core::codec::SseDecoder;

/// Feed `data` to `relay` cut into pieces of `data[0]`-derived sizes.
pub fn feed_in_pieces(relay: &mut Relay, data: &[u8]) -> Vec<u8> {
    let (cut, rest) = data.split_first().unwrap_or((&0, &[]));
    let step = usize::from(cut % 17) + 1;
    let mut out = Vec::new();
    for piece in rest.chunks(step) {
        relay.feed(piece, &mut out);
    }
    relay.finish(&mut out);
    out
}

/// Everything sent to the client is whole SSE events whose data is JSON or
/// `[DONE]`, and the stream ended one way or another.
pub fn check_client_stream(relay: &Relay, out: &[u8]) {
    assert!(relay.state().outcome.is_some(), "the stream must end");
    let mut dec = SseDecoder::new();
    dec.push(out);
    while let Some(ev) = dec.next_event().expect("the gateway writes valid SSE") {
        let data = ev.data.trim();
        assert!(
            data == "[DONE]" || serde_json::from_str::<serde_json::Value>(data).is_ok(),
            "event data must be JSON: {data:?}"
        );
    }
    assert!(dec.finish().is_none(), "no half event at the end");
}
