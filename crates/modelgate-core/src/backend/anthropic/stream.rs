//! Anthropic's event stream from an upstream: relayed as it is to a
//! Messages client ([`MessagesPassRelay`]), or as chat chunks to a chat
//! client ([`ChatFromMessagesRelay`]). Both read the usage for settlement:
//! `message_start` holds the input and cache counts, each `message_delta`
//! the cumulative totals (which overwrite, never add).

use serde_json::{Value, json};

use super::{finish_reason, usage_of};
use crate::backend::{StreamOutcome, StreamState, Usage, write_event, write_typed_event};
use crate::codec::SseDecoder;

/// The whole usage so far: `message_start`'s, overwritten by any count a
/// later `message_delta` carries.
#[derive(Debug, Default)]
struct Counts(serde_json::Map<String, Value>);

impl Counts {
    fn take(&mut self, usage: Option<&Value>) -> Option<Usage> {
        if let Some(Value::Object(u)) = usage {
            for (k, v) in u {
                self.0.insert(k.clone(), v.clone());
            }
        }
        usage_of(&Value::Object(self.0.clone()))
    }
}

/// What one upstream event means to a relay.
enum Event {
    Data(Value),
    Unreadable,
}

/// Decode the next whole events of `decoder`.
fn events(decoder: &mut SseDecoder) -> Vec<(String, Event)> {
    let mut out = Vec::new();
    loop {
        match decoder.next_event() {
            Ok(Some(ev)) if ev.data.trim().is_empty() => {}
            Ok(Some(ev)) => {
                let data = serde_json::from_str::<Value>(&ev.data);
                let kind = ev
                    .event
                    .or_else(|| data.as_ref().ok()?.get("type")?.as_str().map(str::to_owned))
                    .unwrap_or_default();
                out.push((kind, data.map_or(Event::Unreadable, Event::Data)));
            }
            Ok(None) => return out,
            Err(_) => {
                out.push((String::new(), Event::Unreadable));
                return out;
            }
        }
    }
}

/// Write Anthropic's `error` event.
fn write_error(out: &mut Vec<u8>, kind: &str, message: &str) {
    let ev = json!({"type": "error", "error": {"type": kind, "message": message}});
    write_typed_event(out, "error", &ev.to_string());
}

/// An upstream's Messages events, relayed as they are but for the model
/// name, which is the client's (as on every other route).
#[derive(Debug)]
pub struct MessagesPassRelay {
    decoder: SseDecoder,
    counts: Counts,
    model: String,
    pub(in crate::backend) state: StreamState,
}

impl MessagesPassRelay {
    /// A relay whose `message_start` names `model`.
    pub fn new(model: &str) -> Self {
        Self {
            decoder: SseDecoder::new(),
            counts: Counts::default(),
            model: model.to_owned(),
            state: StreamState::default(),
        }
    }

    pub(in crate::backend) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.state.outcome.is_some() {
            return;
        }
        self.decoder.push(chunk);
        for (kind, ev) in events(&mut self.decoder) {
            if self.state.outcome.is_some() {
                return;
            }
            let Event::Data(mut data) = ev else {
                return self.fail(
                    "upstream_malformed",
                    "The upstream sent a malformed stream event.",
                    out,
                );
            };
            if let Some(m) = data.pointer_mut("/message/model") {
                *m = json!(self.model);
            }
            write_typed_event(out, &kind, &data.to_string());
            match kind.as_str() {
                "message_start" => {
                    self.state.usage = self.counts.take(data.pointer("/message/usage"));
                }
                "message_delta" => self.state.usage = self.counts.take(data.get("usage")),
                "content_block_delta" => self.state.output_chunks += 1,
                "message_stop" => self.state.outcome = Some(StreamOutcome::Complete),
                "error" => self.state.outcome = Some(StreamOutcome::UpstreamError),
                _ => {}
            }
        }
    }

    pub(in crate::backend) fn fail(
        &mut self,
        code: &'static str,
        message: &str,
        out: &mut Vec<u8>,
    ) {
        if self.state.outcome.is_none() {
            write_error(out, "api_error", message);
            self.state.outcome = Some(StreamOutcome::Failed(code));
        }
    }

    /// A `ping`, while the upstream is silent.
    pub(in crate::backend) fn ping(&self, out: &mut Vec<u8>) {
        if self.state.outcome.is_none() {
            write_typed_event(out, "ping", r#"{"type":"ping"}"#);
        }
    }
}

/// An upstream's Messages events as chat completion chunks.
#[derive(Debug)]
pub struct ChatFromMessagesRelay {
    decoder: SseDecoder,
    counts: Counts,
    id: String,
    model: String,
    created_s: i64,
    client_include_usage: bool,
    /// Tool call index of each content block that is a tool use.
    tool_of_block: Vec<(u64, u64)>,
    finish: Option<&'static str>,
    pub(in crate::backend) state: StreamState,
}

impl ChatFromMessagesRelay {
    /// A relay whose chunks name `model`, created at `created_s`.
    pub fn new(request_id: &str, model: &str, created_s: i64, client_include_usage: bool) -> Self {
        Self {
            decoder: SseDecoder::new(),
            counts: Counts::default(),
            id: format!("chatcmpl-{}", request_id.trim_start_matches("req_")),
            model: model.to_owned(),
            created_s,
            client_include_usage,
            tool_of_block: Vec::new(),
            finish: None,
            state: StreamState::default(),
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Value, finish: Option<&str>) {
        let c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created_s,
            "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        write_event(out, &c.to_string());
    }

    pub(in crate::backend) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.state.outcome.is_some() {
            return;
        }
        self.decoder.push(chunk);
        for (kind, ev) in events(&mut self.decoder) {
            if self.state.outcome.is_some() {
                return;
            }
            let Event::Data(data) = ev else {
                return self.fail(
                    "upstream_malformed",
                    "The upstream sent a malformed stream event.",
                    out,
                );
            };
            self.event(&kind, &data, out);
        }
    }

    fn event(&mut self, kind: &str, data: &Value, out: &mut Vec<u8>) {
        match kind {
            "message_start" => {
                self.state.usage = self.counts.take(data.pointer("/message/usage"));
                self.chunk(out, json!({"role": "assistant", "content": ""}), None);
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                if matches!(
                    block.get("type").and_then(Value::as_str),
                    Some("tool_use" | "server_tool_use")
                ) {
                    let k = self.tool_of_block.len() as u64;
                    let index = data.get("index").and_then(Value::as_u64).unwrap_or(k);
                    self.tool_of_block.push((index, k));
                    let call = json!({"index": k, "id": block.get("id"), "type": "function",
                        "function": {"name": block.get("name"), "arguments": ""}});
                    self.chunk(out, json!({"tool_calls": [call]}), None);
                }
            }
            "content_block_delta" => self.delta(data, out),
            "message_delta" => {
                self.state.usage = self.counts.take(data.get("usage"));
                self.finish = Some(finish_reason(
                    data.pointer("/delta/stop_reason").and_then(Value::as_str),
                ));
            }
            "message_stop" => {
                self.chunk(out, json!({}), Some(self.finish.unwrap_or("stop")));
                if self.client_include_usage {
                    let usage = self.state.usage.unwrap_or_default().to_json();
                    let c = json!({"id": self.id, "object": "chat.completion.chunk",
                        "created": self.created_s, "model": self.model, "choices": [], "usage": usage});
                    write_event(out, &c.to_string());
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.state.outcome = Some(StreamOutcome::Complete);
            }
            "error" => {
                let e = data.get("error").unwrap_or(&Value::Null);
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error");
                let kind = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
                let ev = json!({"error": {"message": message, "type": kind, "param": null, "code": kind}});
                write_event(out, &ev.to_string());
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.state.outcome = Some(StreamOutcome::UpstreamError);
            }
            _ => {}
        }
    }

    fn delta(&mut self, data: &Value, out: &mut Vec<u8>) {
        let delta = data.get("delta").unwrap_or(&Value::Null);
        let text = |k: &str| {
            delta
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let chat = match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => text("text").map(|t| json!({"content": t})),
            Some("thinking_delta") => text("thinking").map(|t| json!({"reasoning_content": t})),
            Some("input_json_delta") => {
                let index = data.get("index").and_then(Value::as_u64);
                let k = self
                    .tool_of_block
                    .iter()
                    .find(|(b, _)| Some(*b) == index)
                    .map(|(_, k)| *k);
                text("partial_json").zip(k).map(|(args, k)| {
                    json!({"tool_calls": [{"index": k, "function": {"arguments": args}}]})
                })
            }
            _ => None,
        };
        if let Some(chat) = chat {
            self.state.output_chunks += 1;
            self.chunk(out, chat, None);
        }
    }

    pub(in crate::backend) fn fail(
        &mut self,
        code: &'static str,
        message: &str,
        out: &mut Vec<u8>,
    ) {
        if self.state.outcome.is_none() {
            crate::backend::write_error_event(out, code, message);
            self.state.outcome = Some(StreamOutcome::Failed(code));
        }
    }
}
