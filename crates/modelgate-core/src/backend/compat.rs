//! What the OpenAI-compatible backends share: the request body, the
//! buffered answer, and the SSE relay.
//!
//! Answers pass through byte for byte; the relay only reads each event
//! enough to pick up usage, drop the usage chunk the gateway asked for on
//! the client's behalf, and notice errors and the end of the stream.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::{
    BackendKind, StreamOutcome, StreamState, UpstreamCall, Usage, write_error_event, write_event,
};
use crate::codec::SseDecoder;
use crate::error::UpstreamError;
use crate::request::Endpoint;

fn path(endpoint: Option<Endpoint>) -> &'static str {
    match endpoint {
        Some(Endpoint::Chat) => "/chat/completions",
        Some(Endpoint::Completion) => "/completions",
        Some(Endpoint::Embeddings) => "/embeddings",
        Some(Endpoint::Responses) => "/responses",
        Some(Endpoint::Messages) => "/messages",
        None => "/models",
    }
}

/// For bases that include the version (`https://api.openai.com/v1`).
pub(super) fn versioned_url(base: &str, endpoint: Option<Endpoint>) -> String {
    format!("{base}{}", path(endpoint))
}

/// For server roots (`http://host:8000`), tolerating a trailing `/v1`.
pub(super) fn root_url(base: &str, endpoint: Option<Endpoint>) -> String {
    if base.ends_with("/v1") {
        versioned_url(base, endpoint)
    } else {
        format!("{base}/v1{}", path(endpoint))
    }
}

/// The upstream body: the client's, with the upstream model name, the
/// usage request on streams, and the gateway's completion cap.
pub(super) fn body(kind: BackendKind, call: &UpstreamCall, model: &str) -> Value {
    let mut body = call.body.clone();
    body.insert("model".into(), Value::String(model.to_owned()));
    let chat_like = matches!(call.endpoint, Endpoint::Chat | Endpoint::Completion);
    if call.stream && call.upstream_include_usage && chat_like {
        let opts = body
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if !opts.is_object() {
            *opts = Value::Object(Map::new());
        }
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    if let Some(cap) = call.injected_max_tokens {
        // OpenAI's newer models refuse `max_tokens` on chat.
        let field = match call.endpoint {
            Endpoint::Responses => "max_output_tokens",
            Endpoint::Chat if kind == BackendKind::Openai => "max_completion_tokens",
            _ => "max_tokens",
        };
        body.insert(field.into(), Value::from(cap));
    }
    Value::Object(body)
}

/// The fields of a whole answer the gateway looks at; its choices (or
/// embeddings) are checked to be a list and skipped without being built.
#[derive(Deserialize)]
struct AnswerPeek {
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    data: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<Value>,
}

/// A 2xx buffered answer: passed through as it came, usage read from it.
/// Only an answer of the endpoint's shape (an object with a `choices`
/// array, or `data` for embeddings) is relayed: any other JSON (a captive
/// portal's, a metadata service's, another API's) could carry what the
/// client must not see. Embeddings usage of 0 (older llama.cpp builds
/// report no counts) is no usage: it is estimated.
pub(super) fn parse(
    endpoint: Endpoint,
    body: &[u8],
) -> Result<(Bytes, Option<Usage>), UpstreamError> {
    let usage = |u: Option<&Value>| {
        u.and_then(Usage::from_json)
            .filter(|u| endpoint.generates() || u.prompt_tokens > 0)
    };
    // The usual answer, read without building it. Anything else (an error
    // body, a list that is not one, a repeated field) is read whole below,
    // for the right error.
    if let Some(peek) = std::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str::<AnswerPeek>(text).ok())
    {
        let listed = match endpoint {
            Endpoint::Embeddings => peek.data.is_some(),
            _ => peek.choices.is_some(),
        };
        if listed {
            let usage = usage(peek.usage.as_ref());
            return Ok((Bytes::copy_from_slice(body), usage));
        }
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| UpstreamError::BadResponse {
        status: 0,
        detail: format!("non-JSON 2xx body: {e}"),
    })?;
    let list = if endpoint == Endpoint::Embeddings {
        "data"
    } else {
        "choices"
    };
    if !v.get(list).is_some_and(Value::is_array) {
        return Err(match v.get("error") {
            Some(_) => super::upstream_error(502, body),
            None => UpstreamError::BadResponse {
                status: 0,
                detail: format!("2xx body of {} bytes without '{list}'", body.len()),
            },
        });
    }
    let usage = usage(v.get("usage"));
    Ok((Bytes::copy_from_slice(body), usage))
}

/// The fields of a stream chunk the relay looks at; the rest is skipped
/// without being built.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoicePeek<'a>>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChoicePeek<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaPeek<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaPeek<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
}

impl ChoicePeek<'_> {
    /// Whether this choice carries generated output (not just a role or a
    /// finish reason).
    fn has_output(&self) -> bool {
        let some = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.is_empty());
        some(&self.text)
            || self.delta.as_ref().is_some_and(|d| {
                some(&d.content) || some(&d.reasoning_content) || d.tool_calls.is_some()
            })
    }
}

/// Relays an OpenAI-compatible SSE stream to the client.
#[derive(Debug)]
pub struct SseRelay {
    decoder: SseDecoder,
    client_include_usage: bool,
    pub(super) state: StreamState,
}

impl SseRelay {
    /// A relay; `client_include_usage` keeps the usage chunk for the client.
    pub fn new(client_include_usage: bool) -> Self {
        Self {
            decoder: SseDecoder::new(),
            client_include_usage,
            state: StreamState::default(),
        }
    }

    pub(super) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.state.outcome.is_some() {
            return;
        }
        self.decoder.push(chunk);
        loop {
            match self.decoder.next_event() {
                Ok(Some(ev)) => {
                    self.event(&ev.data, out);
                    if self.state.outcome.is_some() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(_) => {
                    return self.fail(
                        out,
                        "upstream_malformed",
                        "The upstream sent an unreadable stream.",
                    );
                }
            }
        }
    }

    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state.outcome.is_some() {
            return;
        }
        // A last event without its blank line counts only if it is whole;
        // a half-written one means the stream was cut, not garbled.
        if let Some(ev) = self.decoder.finish()
            && (ev.data.trim() == "[DONE]" || serde_json::from_str::<IgnoredAny>(&ev.data).is_ok())
        {
            self.event(&ev.data, out);
        }
        if self.state.outcome.is_none() {
            self.fail(
                out,
                "upstream_stream_cut",
                "The upstream stream ended before it was complete.",
            );
        }
    }

    fn fail(&mut self, out: &mut Vec<u8>, code: &'static str, message: &str) {
        write_error_event(out, code, message);
        self.state.outcome = Some(StreamOutcome::Failed(code));
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        let data = data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            out.extend_from_slice(b"data: [DONE]\n\n");
            if self.state.outcome.is_none() {
                self.state.outcome = Some(StreamOutcome::Complete);
            }
            return;
        }
        let Ok(peek) = serde_json::from_str::<Peek>(data) else {
            return self.fail(
                out,
                "upstream_malformed",
                "The upstream sent a malformed stream event.",
            );
        };
        if peek.error.is_some() {
            // vLLM and others report a mid-stream failure in-band; the client
            // gets it as it came, then the stream is closed.
            write_event(out, data);
            out.extend_from_slice(b"data: [DONE]\n\n");
            self.state.outcome = Some(StreamOutcome::UpstreamError);
            return;
        }
        let choices = peek.choices.as_deref().unwrap_or(&[]);
        if let Some(usage) = peek.usage.as_ref().and_then(Usage::from_json) {
            self.state.usage = Some(usage);
            if choices.is_empty() && !self.client_include_usage {
                return;
            }
        }
        if choices.iter().any(ChoicePeek::has_output) {
            self.state.output_chunks += 1;
        }
        write_event(out, data);
    }
}
