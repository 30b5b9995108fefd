//! The mock's `/v1/responses`: a Response, or its event stream, for the
//! same plan as a chat answer (text of `n` words, or one tool call).

use serde_json::{Value, json};

use super::{Gen, content_words, word};

/// The id of every Response, unless the plan is `stateful`.
pub(super) const ID: &str = "resp_mock1";
const ITEM: &str = "msg_mock1";
const CALL: &str = "fc_mock1";

/// Prompt tokens of a Responses request: words of the instructions and of
/// every input text.
pub(super) fn count_input(body: &Value) -> u64 {
    let mut n = content_words(body.get("instructions"));
    match body.get("input") {
        Some(s @ Value::String(_)) => n += content_words(Some(s)),
        Some(Value::Array(items)) => {
            for item in items {
                n += content_words(item.get("content")).max(content_words(item.get("output")));
            }
        }
        _ => {}
    }
    n
}

impl Gen {
    fn status(&self) -> &'static str {
        if self.finish == "length" {
            "incomplete"
        } else {
            "completed"
        }
    }

    fn response_usage(&self) -> Value {
        if !self.plan.usage {
            return Value::Null;
        }
        let output: Value = match &self.plan.report_tokens {
            Some(n) => serde_json::from_str(n).unwrap_or(Value::Null),
            None => self.n.into(),
        };
        json!({"input_tokens": self.prompt, "input_tokens_details": {"cached_tokens": self.cached()},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.prompt + self.n})
    }

    fn item(&self, text: &str, status: &str) -> Value {
        match &self.tool_call {
            Some((name, args)) => {
                json!({"type": "function_call", "id": CALL, "call_id": "call_mock1",
                "name": name, "arguments": if status == "completed" { args.as_str() } else { "" },
                "status": status})
            }
            None => {
                let content = if status == "completed" {
                    json!([{"type": "output_text", "text": text, "annotations": []}])
                } else {
                    json!([])
                };
                json!({"type": "message", "id": ITEM, "role": "assistant", "status": status,
                    "content": content})
            }
        }
    }

    fn response(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
        json!({"id": self.response_id, "object": "response", "created_at": 1_700_000_000, "status": status,
            "model": self.model, "output": output, "usage": usage, "error": null,
            "incomplete_details": incomplete, "store": false})
    }

    pub(super) fn response_body(&self, text: &str) -> Value {
        let item = self.item(text, "completed");
        self.response(self.status(), vec![item], self.response_usage())
    }

    /// The stream's events before the first delta.
    fn prefix(&self) -> Vec<Value> {
        let start = self.response("in_progress", vec![], Value::Null);
        let mut events = vec![
            json!({"type": "response.created", "response": start}),
            json!({"type": "response.in_progress", "response": start}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": self.item("", "in_progress")}),
        ];
        if self.tool_call.is_none() {
            events.push(json!({"type": "response.content_part.added", "item_id": ITEM, "output_index": 0,
                "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}));
        }
        events
    }

    fn text(&self) -> String {
        (0..self.n).map(word).collect()
    }

    /// Write `events` numbered from `first`.
    fn sse(first: usize, events: Vec<Value>) -> String {
        let mut out = String::new();
        for (i, mut e) in events.into_iter().enumerate() {
            e["sequence_number"] = (first + i).into();
            let kind = e["type"].as_str().unwrap_or_default().to_owned();
            out.push_str(&format!("event: {kind}\ndata: {e}\n\n"));
        }
        out
    }

    /// Delta `i` (with the prefix before the first).
    pub(super) fn response_event(&self, i: Option<u64>) -> String {
        let i = i.unwrap_or_default();
        let prefix = self.prefix();
        let base = prefix.len();
        let delta = match &self.tool_call {
            Some((_, args)) => {
                json!({"type": "response.function_call_arguments.delta", "item_id": CALL,
                "output_index": 0, "delta": args})
            }
            None => {
                json!({"type": "response.output_text.delta", "item_id": ITEM, "output_index": 0,
                "content_index": 0, "delta": word(i), "logprobs": []})
            }
        };
        let at = base + usize::try_from(i).unwrap_or(0);
        if i == 0 {
            let mut events = prefix;
            events.push(delta);
            return Self::sse(0, events);
        }
        Self::sse(at, vec![delta])
    }

    fn after_deltas(&self) -> usize {
        self.prefix().len() + usize::try_from(self.n).unwrap_or(0)
    }

    /// The events after the last delta, ending with the terminal one.
    pub(super) fn response_tail(&self) -> String {
        let text = self.text();
        let done = self.item(&text, "completed");
        let mut events = match &self.tool_call {
            Some((name, args)) => vec![json!({"type": "response.function_call_arguments.done",
                "item_id": CALL, "output_index": 0, "arguments": args, "name": name})],
            None => vec![
                json!({"type": "response.output_text.done", "item_id": ITEM, "output_index": 0,
                    "content_index": 0, "text": text, "logprobs": []}),
                json!({"type": "response.content_part.done", "item_id": ITEM, "output_index": 0,
                    "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}),
            ],
        };
        events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": done}));
        let terminal = format!("response.{}", self.status());
        let response = self.response(self.status(), vec![done], self.response_usage());
        events.push(json!({"type": terminal, "response": response}));
        Self::sse(self.after_deltas(), events)
    }

    /// A `response.failed` in place of the next event.
    pub(super) fn response_failed(&self) -> String {
        let mut response = self.response("failed", vec![], Value::Null);
        response["error"] = json!({"code": "server_error", "message": "mock upstream error 500"});
        let at = self.prefix().len() + usize::try_from(self.plan.after.min(self.n)).unwrap_or(0);
        Self::sse(
            at,
            vec![json!({"type": "response.failed", "response": response})],
        )
    }
}
