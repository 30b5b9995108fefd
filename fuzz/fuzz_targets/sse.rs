//! Any bytes as an OpenAI-compatible upstream stream, in any pieces.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use modelgate_core::backend::{Relay, SseRelay};

fuzz_target!(|data: &[u8]| {
    let mut relay = Relay::Sse(SseRelay::new(data.len() % 2 == 0));
    let out = common::feed_in_pieces(&mut relay, data);
    common::check_client_stream(&relay, &out);
});
