//! A backend's relay read back as chat events, for the translators that
//! write another client API's stream from them (the Responses and the
//! Messages bridges): the relay runs first (OpenAI SSE as it is, Ollama
//! NDJSON transcoded), so a translator reads one shape, chat chunks then
//! `[DONE]` or an error event, and the relay keeps the usage and outcome
//! that settle the request.

use super::{Relay, StreamState};
use crate::codec::SseDecoder;

/// A relay whose output is decoded back into event data.
#[derive(Debug)]
pub struct ChatEvents {
    inner: Relay,
    decoder: SseDecoder,
    scratch: Vec<u8>,
}

impl ChatEvents {
    /// Events of `inner`'s output (`inner` must keep the usage chunk).
    pub fn new(inner: Relay) -> Self {
        Self {
            inner,
            decoder: SseDecoder::new(),
            scratch: Vec::new(),
        }
    }

    /// Feed upstream bytes; the chat events they complete.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.inner.feed(chunk, &mut self.scratch);
        self.drain()
    }

    /// The upstream body ended; the last events.
    pub fn finish(&mut self) -> Vec<String> {
        self.inner.finish(&mut self.scratch);
        self.drain()
    }

    /// End the stream now; the error event it ends with.
    pub fn fail(&mut self, code: &'static str, message: &str) -> Vec<String> {
        self.inner.fail(code, message, &mut self.scratch);
        self.drain()
    }

    /// Whether the stream is closed.
    pub fn is_done(&self) -> bool {
        self.inner.is_done()
    }

    /// What the stream has told of itself so far.
    pub fn state(&self) -> &StreamState {
        self.inner.state()
    }

    fn drain(&mut self) -> Vec<String> {
        self.decoder.push(&self.scratch);
        self.scratch.clear();
        let mut events = Vec::new();
        // The inner relay writes whole, well-formed events.
        while let Ok(Some(ev)) = self.decoder.next_event() {
            let data = ev.data.trim();
            if !data.is_empty() {
                events.push(data.to_owned());
            }
        }
        events
    }
}
