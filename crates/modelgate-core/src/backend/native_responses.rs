//! An upstream's own `/v1/responses`: the buffered answer checked and its
//! usage read, the event stream relayed event by event.
//!
//! The relay passes each event through, reading only its `type`, its
//! `sequence_number` and, on the terminal event, the usage; an event that
//! carries the Response (created, in progress, the terminal one) is named
//! as the gateway names it (its id, and the client's previous id), since an
//! upstream's ids may repeat across keys. Whatever way the stream ends, the
//! client sees exactly one terminal event: a stream cut, garbled or timed
//! out ends with a `response.failed` the gateway writes, numbered after the
//! last event relayed.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::{StreamOutcome, StreamState, Usage};
use crate::codec::SseDecoder;
use crate::error::UpstreamError;

/// A 2xx buffered answer: passed through if it is a Response.
pub(super) fn parse(body: &[u8]) -> Result<(Bytes, Option<Usage>), UpstreamError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| UpstreamError::BadResponse {
        status: 0,
        detail: format!("non-JSON 2xx body: {e}"),
    })?;
    if v.get("object").and_then(Value::as_str) != Some("response")
        || !v.get("output").is_some_and(Value::is_array)
    {
        return Err(UpstreamError::BadResponse {
            status: 0,
            detail: format!("2xx body of {} bytes that is not a Response", body.len()),
        });
    }
    let usage = v.get("usage").and_then(Usage::from_json);
    Ok((Bytes::copy_from_slice(body), usage))
}

/// The id ModelGate gives the Response of request `request_id`: every
/// Response a client sees is named by the gateway, never by an upstream
/// (an upstream's ids may repeat, and one key's must never name another's).
pub fn response_id(request_id: &str) -> String {
    format!("resp_{}", request_id.trim_start_matches("req_"))
}

/// Name `response` (a Response object) as the gateway does: its `id`, and
/// its `previous_response_id` the one the client gave (null, if the
/// upstream wrote the field and the client gave none).
pub fn name_response(response: &mut Value, id: &str, previous: Option<&str>) {
    let Some(r) = response.as_object_mut() else {
        return;
    };
    r.insert("id".into(), Value::from(id));
    match previous {
        Some(p) => {
            r.insert("previous_response_id".into(), Value::from(p));
        }
        None => {
            if let Some(p) = r.get_mut("previous_response_id") {
                *p = Value::Null;
            }
        }
    }
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(default)]
    response: Option<ResponsePeek<'a>>,
    #[serde(default)]
    delta: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ResponsePeek<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<Value>,
}

/// The id the gateway gives a Response, and the `previous_response_id` the
/// client gave.
#[derive(Debug)]
struct Names {
    id: String,
    previous: Option<String>,
}

/// Relays an upstream's Responses event stream to the client.
#[derive(Debug)]
pub struct NativeResponsesRelay {
    decoder: SseDecoder,
    /// How the gateway names the Response (boxed: the relay is kept by
    /// value in every stream, whatever its kind).
    names: Box<Names>,
    next_sequence: u64,
    /// The Response the upstream's terminal event carried, JSON.
    final_response: Option<String>,
    pub(super) state: StreamState,
}

impl NativeResponsesRelay {
    /// A relay naming the Response `id`.
    pub fn new(id: String) -> Self {
        Self {
            decoder: SseDecoder::new(),
            names: Box::new(Names { id, previous: None }),
            next_sequence: 0,
            final_response: None,
            state: StreamState::default(),
        }
    }

    /// The same, naming the Response's `previous_response_id` `previous`.
    pub fn with_previous_response_id(mut self, previous: Option<String>) -> Self {
        self.names.previous = previous;
        self
    }

    /// The Response the upstream's stream ended with (JSON, as the upstream
    /// named it), if it did.
    pub fn final_response(&self) -> Option<&str> {
        self.final_response.as_deref()
    }

    pub(super) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.state.outcome.is_some() {
            return;
        }
        self.decoder.push(chunk);
        while self.state.outcome.is_none() {
            match self.decoder.next_event() {
                Ok(Some(ev)) => self.event(&ev.data, out),
                Ok(None) => return,
                Err(_) => {
                    return self.fail(
                        "upstream_malformed",
                        "The upstream sent an unreadable stream.",
                        out,
                    );
                }
            }
        }
    }

    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state.outcome.is_some() {
            return;
        }
        if let Some(ev) = self.decoder.finish()
            && serde_json::from_str::<IgnoredAny>(&ev.data).is_ok()
        {
            self.event(&ev.data, out);
        }
        self.fail(
            "upstream_stream_cut",
            "The upstream stream ended before it was complete.",
            out,
        );
    }

    /// End the stream with `response.failed` (if it is not over).
    pub(super) fn fail(&mut self, code: &'static str, message: &str, out: &mut Vec<u8>) {
        if self.state.outcome.is_some() {
            return;
        }
        let response = json!({
            "id": self.names.id, "object": "response", "status": "failed", "output": [],
            "error": {"code": code, "message": message}, "usage": null,
        });
        let ev = json!({"type": "response.failed", "sequence_number": self.next_sequence,
            "response": response});
        write_typed_event(out, "response.failed", &ev.to_string());
        self.state.outcome = Some(StreamOutcome::Failed(code));
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        let data = data.trim();
        // Some servers end with `[DONE]`; OpenAI's stream does not.
        if data.is_empty() || data == "[DONE]" {
            return;
        }
        let Ok(peek) = serde_json::from_str::<Peek>(data) else {
            return self.fail(
                "upstream_malformed",
                "The upstream sent a malformed stream event.",
                out,
            );
        };
        if let Some(n) = peek.sequence_number {
            self.next_sequence = self.next_sequence.max(n.saturating_add(1));
        }
        if peek.delta.is_some() {
            self.state.output_chunks += 1;
        }
        let outcome = match &*peek.kind {
            "response.completed" | "response.incomplete" => Some(StreamOutcome::Complete),
            "response.failed" => Some(StreamOutcome::UpstreamError),
            _ => None,
        };
        let named = peek.response.as_ref().is_some_and(|r| r.id.is_some());
        // Parsed whole only for the few events that carry the Response.
        let mut event = (named || outcome.is_some())
            .then(|| serde_json::from_str::<Value>(data).ok())
            .flatten();
        if outcome.is_some() {
            // Kept as the upstream named it: its id is what it knows.
            self.final_response = event
                .as_ref()
                .and_then(|v| v.get("response"))
                .map(Value::to_string);
        }
        match event.as_mut().and_then(|v| v.get_mut("response")) {
            Some(r) if named => {
                let Names { id, previous } = &*self.names;
                name_response(r, id, previous.as_deref());
                let renamed = event.as_ref().map(Value::to_string).unwrap_or_default();
                write_typed_event(out, &peek.kind, &renamed);
            }
            _ => write_typed_event(out, &peek.kind, data),
        }
        let Some(outcome) = outcome else { return };
        self.state.usage = peek
            .response
            .and_then(|r| r.usage)
            .as_ref()
            .and_then(Usage::from_json);
        self.state.outcome = Some(outcome);
    }
}

/// Write one event with its `event:` line (the Responses grammar names
/// every event; clients dispatch on the data's `type`, which it repeats).
pub(crate) fn write_typed_event(out: &mut Vec<u8>, kind: &str, data: &str) {
    // A name with a line break would end the field early.
    if !kind.contains(['\n', '\r']) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.push(b'\n');
    }
    super::write_event(out, data);
}
