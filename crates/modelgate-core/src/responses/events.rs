//! A streamed chat completion as the Responses event grammar (the
//! bridge's way out, streamed).
//!
//! It reads the backend relay's chat events ([`ChatEvents`]). From them it
//! writes `response.created` and `response.in_progress`, then per output
//! item `output_item.added`, its deltas and its `.done` events, and exactly
//! one terminal event:
//! `response.completed`, `response.incomplete` (the token cap was hit) or
//! `response.failed` (an error in-band or a stream the gateway had to end),
//! numbered by `sequence_number` from 0.

use serde_json::{Map, Value, json};

use super::from_chat::{call_item, message_item, reasoning_item, text_part};
use super::{Echo, status_of, usage};
use crate::backend::{ChatEvents, Relay, StreamState, write_typed_event};

/// The output item being streamed.
#[derive(Debug)]
enum Open {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        text: String,
    },
    Call {
        index: u64,
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Relays a chat stream to the client as Responses events.
#[derive(Debug)]
pub struct BridgeRelay {
    chat: ChatEvents,
    echo: Echo,
    sequence: u64,
    started: bool,
    closed: bool,
    output: Vec<Value>,
    open: Option<Open>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    /// The Response the terminal event carried, JSON.
    final_response: Option<String>,
}

impl BridgeRelay {
    /// A bridge over `inner`, which must keep the usage chunk for it.
    pub fn new(inner: Relay, echo: Echo) -> Self {
        Self {
            chat: ChatEvents::new(inner),
            echo,
            sequence: 0,
            started: false,
            closed: false,
            output: Vec::new(),
            open: None,
            finish_reason: None,
            usage: None,
            final_response: None,
        }
    }

    /// The Response the stream ended with (JSON), once it has.
    pub fn final_response(&self) -> Option<&str> {
        self.final_response.as_deref()
    }

    /// Feed upstream bytes; client bytes are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let events = self.chat.feed(chunk);
        self.translate(events, out);
    }

    /// The upstream body ended.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let events = self.chat.finish();
        self.translate(events, out);
    }

    /// End the stream now with `response.failed`.
    pub fn fail(&mut self, code: &'static str, message: &str, out: &mut Vec<u8>) {
        let events = self.chat.fail(code, message);
        self.translate(events, out);
    }

    /// Whether the client stream is closed.
    pub fn is_done(&self) -> bool {
        self.chat.is_done()
    }

    /// What the stream has told of itself so far.
    pub fn state(&self) -> &StreamState {
        self.chat.state()
    }

    fn translate(&mut self, events: Vec<String>, out: &mut Vec<u8>) {
        for data in events {
            self.chat_event(&data, out);
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut fields: Map<String, Value>) {
        fields.insert("type".into(), json!(kind));
        fields.insert("sequence_number".into(), json!(self.sequence));
        self.sequence += 1;
        write_typed_event(out, kind, &Value::Object(fields).to_string());
    }

    fn emit_response(&mut self, out: &mut Vec<u8>, kind: &str, response: Map<String, Value>) {
        let mut f = Map::new();
        f.insert("response".into(), Value::Object(response));
        self.emit(out, kind, f);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.echo.response("in_progress", vec![], Value::Null);
        self.emit_response(out, "response.created", r.clone());
        self.emit_response(out, "response.in_progress", r);
    }

    fn chat_event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.closed || data.is_empty() {
            return;
        }
        self.start(out);
        if data == "[DONE]" {
            return self.complete(out);
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(e) = chunk.get("error") {
            return self.failed(out, e);
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        let text = |k: &str| {
            delta
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        if let Some(r) = text("reasoning_content").or_else(|| text("reasoning")) {
            self.reasoning_delta(out, r);
        }
        if let Some(t) = text("content") {
            self.text_delta(out, t);
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                self.call_delta(out, c);
            }
        }
    }

    fn index_fields(&self, id: &str) -> Map<String, Value> {
        let mut f = Map::new();
        f.insert("item_id".into(), json!(id));
        f.insert("output_index".into(), json!(self.output.len()));
        f
    }

    fn added(&mut self, out: &mut Vec<u8>, item: Value) {
        let mut f = Map::new();
        f.insert("output_index".into(), json!(self.output.len()));
        f.insert("item".into(), item);
        self.emit(out, "response.output_item.added", f);
    }

    fn reasoning_delta(&mut self, out: &mut Vec<u8>, delta: &str) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            self.close(out);
            let id = self.echo.item_id("rs", self.output.len());
            self.added(out, reasoning_item(&id, ""));
            self.open = Some(Open::Reasoning {
                id,
                text: String::new(),
            });
        }
        self.text_event(out, "response.reasoning_text.delta", delta);
    }

    /// Append `delta` to the open item's text, and tell the client.
    fn text_event(&mut self, out: &mut Vec<u8>, kind: &str, delta: &str) {
        let id = match &mut self.open {
            Some(Open::Reasoning { id, text } | Open::Message { id, text }) => {
                text.push_str(delta);
                id.clone()
            }
            _ => return,
        };
        let mut f = self.index_fields(&id);
        f.insert("content_index".into(), json!(0));
        f.insert("delta".into(), json!(delta));
        if matches!(self.open, Some(Open::Message { .. })) {
            f.insert("logprobs".into(), json!([]));
        }
        self.emit(out, kind, f);
    }

    fn open_message(&mut self, out: &mut Vec<u8>) {
        self.close(out);
        let id = self.echo.item_id("msg", self.output.len());
        self.added(out, message_item(&id, "", "in_progress"));
        let mut f = self.index_fields(&id);
        f.insert("content_index".into(), json!(0));
        f.insert("part".into(), text_part(""));
        self.emit(out, "response.content_part.added", f);
        self.open = Some(Open::Message {
            id,
            text: String::new(),
        });
    }

    fn text_delta(&mut self, out: &mut Vec<u8>, delta: &str) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.open_message(out);
        }
        self.text_event(out, "response.output_text.delta", delta);
    }

    fn call_delta(&mut self, out: &mut Vec<u8>, call: &Value) {
        let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let f = |k: &str| {
            call.pointer(&format!("/function/{k}"))
                .and_then(Value::as_str)
        };
        if !matches!(&self.open, Some(Open::Call { index: i, .. }) if *i == index) {
            self.close(out);
            let id = self.echo.item_id("fc", self.output.len());
            let call_id = call
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or(&id)
                .to_owned();
            let name = f("name").unwrap_or_default().to_owned();
            self.added(out, call_item(&id, &call_id, &name, "", "in_progress"));
            self.open = Some(Open::Call {
                index,
                id,
                call_id,
                name,
                arguments: String::new(),
            });
        }
        let Some(delta) = f("arguments").filter(|a| !a.is_empty()) else {
            return;
        };
        let Some(Open::Call { id, arguments, .. }) = &mut self.open else {
            return;
        };
        arguments.push_str(delta);
        let id = id.clone();
        let mut fields = self.index_fields(&id);
        fields.insert("delta".into(), json!(delta));
        self.emit(out, "response.function_call_arguments.delta", fields);
    }

    /// Close the open item with its `.done` events.
    fn close(&mut self, out: &mut Vec<u8>) {
        let item = match self.open.take() {
            None => return,
            Some(Open::Reasoning { id, text }) => {
                let mut f = self.index_fields(&id);
                f.insert("content_index".into(), json!(0));
                f.insert("text".into(), json!(text));
                self.emit(out, "response.reasoning_text.done", f);
                reasoning_item(&id, &text)
            }
            Some(Open::Message { id, text }) => {
                let mut f = self.index_fields(&id);
                f.insert("content_index".into(), json!(0));
                f.insert("text".into(), json!(text));
                f.insert("logprobs".into(), json!([]));
                self.emit(out, "response.output_text.done", f);
                let mut f = self.index_fields(&id);
                f.insert("content_index".into(), json!(0));
                f.insert("part".into(), text_part(&text));
                self.emit(out, "response.content_part.done", f);
                message_item(&id, &text, "completed")
            }
            Some(Open::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            }) => {
                let arguments = if arguments.is_empty() {
                    "{}".to_owned()
                } else {
                    arguments
                };
                let mut f = self.index_fields(&id);
                f.insert("arguments".into(), json!(arguments));
                f.insert("name".into(), json!(name));
                self.emit(out, "response.function_call_arguments.done", f);
                call_item(&id, &call_id, &name, &arguments, "completed")
            }
        };
        let mut f = Map::new();
        f.insert("output_index".into(), json!(self.output.len()));
        f.insert("item".into(), item.clone());
        self.emit(out, "response.output_item.done", f);
        self.output.push(item);
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.open.is_none() && self.output.is_empty() {
            // An empty answer is still one (empty) message.
            self.open_message(out);
        }
        self.close(out);
        self.closed = true;
        let (status, details) = status_of(self.finish_reason.as_deref());
        let mut r = self.echo.response(
            status,
            std::mem::take(&mut self.output),
            usage(self.usage.as_ref()),
        );
        r.insert("incomplete_details".into(), details);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.final_response = Some(Value::Object(r.clone()).to_string());
        self.emit_response(out, kind, r);
    }

    fn failed(&mut self, out: &mut Vec<u8>, error: &Value) {
        self.close(out);
        self.closed = true;
        let s = |k: &str| error.get(k).and_then(Value::as_str);
        let error = json!({
            "code": s("code").unwrap_or("upstream_error"),
            "message": s("message").unwrap_or("The upstream failed."),
        });
        let mut r = self.echo.response(
            "failed",
            std::mem::take(&mut self.output),
            usage(self.usage.as_ref()),
        );
        r.insert("error".into(), error);
        self.final_response = Some(Value::Object(r.clone()).to_string());
        self.emit_response(out, "response.failed", r);
    }
}
