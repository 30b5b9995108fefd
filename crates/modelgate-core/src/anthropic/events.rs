//! A streamed chat completion as Anthropic's event grammar:
//! `message_start (content_block_start content_block_delta*
//! content_block_stop)* message_delta message_stop`, or an `error` event
//! that ends the stream.
//!
//! It reads the backend relay's chat events ([`ChatEvents`]). One block is open at a time and indexes count up from 0 in
//! the order blocks start, as the SDKs need (they append on start and look
//! blocks up by index on delta and stop). A tool call's argument fragments
//! that arrive before its name are held until its block starts; the
//! `finish_reason` is held until the usage chunk, which OpenAI sends after
//! it, so `message_delta` carries the whole usage.

use serde_json::{Map, Value, json};

use super::from_chat::reasoning_of;
use super::{Echo, clean_id, usage};
use crate::backend::{ChatEvents, Relay, StreamState, write_typed_event};

/// The kind of the open content block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
    /// A tool use, by the upstream's tool call index.
    Tool(u64),
}

/// A tool call of the upstream's, by its index.
#[derive(Debug, Default)]
struct Call {
    index: u64,
    id: Option<String>,
    name: Option<String>,
    /// Argument text that came before the block could start.
    pending: String,
    started: bool,
}

/// Relays a chat stream to the client as Messages events.
#[derive(Debug)]
pub struct MessagesRelay {
    chat: ChatEvents,
    echo: Echo,
    started: bool,
    closed: bool,
    next_index: u64,
    open: Option<Block>,
    calls: Vec<Call>,
    finish_reason: Option<String>,
    matched_stop: Option<String>,
    usage: Option<Value>,
}

impl MessagesRelay {
    /// A relay over `inner`, which must keep the usage chunk for it.
    pub fn new(inner: Relay, echo: Echo) -> Self {
        Self {
            chat: ChatEvents::new(inner),
            echo,
            started: false,
            closed: false,
            next_index: 0,
            open: None,
            calls: Vec::new(),
            finish_reason: None,
            matched_stop: None,
            usage: None,
        }
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

    /// End the stream now with an `error` event.
    pub fn fail(&mut self, code: &'static str, message: &str, out: &mut Vec<u8>) {
        let events = self.chat.fail(code, message);
        self.translate(events, out);
    }

    /// A `ping`, to show a silent upstream's stream is alive.
    pub fn ping(&mut self, out: &mut Vec<u8>) {
        if !self.closed {
            self.start(out);
            emit(out, "ping", Map::new());
        }
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

    fn chat_event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.closed || data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            return self.complete(out);
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(e) = chunk.get("error") {
            return self.failed(out, e);
        }
        self.start(out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        if let Some(stop) = choice.get("stop_reason").and_then(Value::as_str) {
            self.matched_stop = Some(stop.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        if let Some(r) = reasoning_of(delta) {
            self.open_block(out, Block::Thinking);
            self.delta(out, json!({"type": "thinking_delta", "thinking": r}));
        }
        if let Some(t) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.open_block(out, Block::Text);
            self.delta(out, json!({"type": "text_delta", "text": t}));
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                self.call_delta(out, c);
            }
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let message = self
            .echo
            .message(vec![], Value::Null, Value::Null, usage(None));
        let mut f = Map::new();
        f.insert("message".into(), Value::Object(message));
        emit(out, "message_start", f);
    }

    /// Make `block` the open block: close the one open, start it.
    fn open_block(&mut self, out: &mut Vec<u8>, block: Block) {
        if self.open == Some(block) {
            return;
        }
        self.close_block(out);
        let content = match block {
            Block::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::Text => json!({"type": "text", "text": ""}),
            Block::Tool(k) => {
                let n = self.calls.iter().filter(|c| c.started).count();
                let call = self.call(k);
                call.started = true;
                let id = call.id.as_deref().filter(|id| !id.is_empty()).map(clean_id);
                let name = call.name.clone().unwrap_or_default();
                let id = id.unwrap_or_else(|| self.echo.tool_use_id(n));
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
        };
        let mut f = Map::new();
        f.insert("index".into(), json!(self.next_index));
        f.insert("content_block".into(), content);
        emit(out, "content_block_start", f);
        self.open = Some(block);
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            let mut f = Map::new();
            f.insert("index".into(), json!(self.next_index));
            emit(out, "content_block_stop", f);
            self.next_index += 1;
        }
    }

    fn delta(&mut self, out: &mut Vec<u8>, delta: Value) {
        let mut f = Map::new();
        f.insert("index".into(), json!(self.next_index));
        f.insert("delta".into(), delta);
        emit(out, "content_block_delta", f);
    }

    fn call(&mut self, index: u64) -> &mut Call {
        let at = match self.calls.iter().position(|c| c.index == index) {
            Some(at) => at,
            None => {
                self.calls.push(Call {
                    index,
                    ..Call::default()
                });
                self.calls.len() - 1
            }
        };
        &mut self.calls[at]
    }

    fn call_delta(&mut self, out: &mut Vec<u8>, c: &Value) {
        let k = c.get("index").and_then(Value::as_u64).unwrap_or(0);
        fn text(v: Option<&Value>) -> Option<&str> {
            v.and_then(Value::as_str).filter(|s| !s.is_empty())
        }
        let args = text(c.pointer("/function/arguments"));
        let call = self.call(k);
        if let Some(id) = text(c.get("id")) {
            call.id.get_or_insert_with(|| id.to_owned());
        }
        if let Some(name) = text(c.pointer("/function/name")) {
            call.name.get_or_insert_with(|| name.to_owned());
        }
        let (started, named) = (call.started, call.name.is_some());
        if self.open == Some(Block::Tool(k)) {
            if let Some(a) = args {
                self.delta(out, json!({"type": "input_json_delta", "partial_json": a}));
            }
            return;
        }
        if started {
            // Arguments for a tool block already closed: Anthropic's
            // grammar cannot reopen it (no server seen interleaves calls).
            tracing::warn!("tool call arguments after the call's block closed: dropped");
            return;
        }
        if let Some(a) = args {
            self.call(k).pending.push_str(a);
        }
        if named {
            self.open_block(out, Block::Tool(k));
            let pending = std::mem::take(&mut self.call(k).pending);
            if !pending.is_empty() {
                self.delta(
                    out,
                    json!({"type": "input_json_delta", "partial_json": pending}),
                );
            }
        }
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close_block(out);
        let (reason, sequence) = self
            .echo
            .stop(self.finish_reason.as_deref(), self.matched_stop.as_deref());
        let mut f = Map::new();
        f.insert(
            "delta".into(),
            json!({"stop_reason": reason, "stop_sequence": sequence}),
        );
        f.insert("usage".into(), usage(self.usage.as_ref()));
        emit(out, "message_delta", f);
        emit(out, "message_stop", Map::new());
        self.closed = true;
    }

    fn failed(&mut self, out: &mut Vec<u8>, e: &Value) {
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("The upstream failed during the stream.");
        let kind = match e.get("type").and_then(Value::as_str) {
            Some(k @ ("overloaded_error" | "rate_limit_error" | "timeout_error")) => k,
            _ if e.get("code").and_then(Value::as_str) == Some("upstream_timeout") => {
                "timeout_error"
            }
            _ => "api_error",
        };
        let mut f = Map::new();
        f.insert("error".into(), json!({"type": kind, "message": message}));
        emit(out, "error", f);
        self.closed = true;
    }
}

/// Write event `kind` with `fields` (and `type`: the event's name).
fn emit(out: &mut Vec<u8>, kind: &str, mut fields: Map<String, Value>) {
    fields.insert("type".into(), json!(kind));
    write_typed_event(out, kind, &Value::Object(fields).to_string());
}
