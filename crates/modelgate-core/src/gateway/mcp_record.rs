//! One usage record per tool call routed to a server, its metrics and its
//! log line: the tool as the gateway names it, the server, how it ended,
//! how long it took and the shape of its arguments; never their values.

use serde_json::Value;

use super::Gateway;
use super::mcp_upstream::{Answer, Failure};
use crate::domain::{Settlement, UsageRecord};
use crate::ports::Ports;

/// A tool call as its record names it.
pub(super) struct ToolCall {
    pub(super) key_id: String,
    pub(super) request_id: String,
    /// Answered as an event stream.
    pub(super) stream: bool,
    pub(super) server: String,
    /// `{server}_{tool}`.
    pub(super) tool: String,
    /// The shape of its arguments ([`crate::mcp::shape`]).
    pub(super) arguments: Option<String>,
    /// When it was sent, ms since the epoch.
    pub(super) started: i64,
}

impl<P: Ports> Gateway<P> {
    /// Record `call`, which ended as `outcome` (nothing is charged: tool
    /// calls carry no tokens).
    pub(super) async fn record_tool_call(&self, call: ToolCall, outcome: &'static str) {
        let now = self.now_ms();
        // Only a tool that answered is known to exist: a client chooses
        // the names it calls, and servers answer an unknown one in more
        // than one way, so no other name becomes a label.
        let answered = matches!(outcome, "ok" | "input_required");
        let known = if answered { call.tool.as_str() } else { "" };
        crate::observe::mcp_tool_call(&call.server, known, outcome, now - call.started);
        let usage = UsageRecord {
            request_id: call.request_id,
            key_id: call.key_id.clone(),
            model: call.tool,
            backend: "mcp".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cost_nanos: None,
            status: 200,
            usage_reported: false,
            stream: call.stream,
            endpoint: Some("mcp".into()),
            deployment: Some(call.server),
            // Asking for input is how a call goes on, not how it fails.
            error: (!answered).then(|| outcome.to_owned()),
            latency_ms: now - call.started,
            created_at: now,
            arguments: call.arguments,
        };
        // Nothing is charged, so no window is named.
        let settlement = Settlement {
            key_id: call.key_id,
            reserved: 0,
            reserved_money: 0,
            quota_window: 0,
            budget_window: 0,
            usage,
        };
        self.settle(settlement).await;
    }
}

/// How a call the server answered ended.
pub(super) fn response_outcome(response: &Value) -> &'static str {
    if response.get("error").is_some() {
        "error"
    } else if response.pointer("/result/isError") == Some(&Value::Bool(true)) {
        "tool_error"
    } else if response.pointer("/result/resultType") == Some(&Value::from("input_required")) {
        // It asked the client for input: the client's retry is a call of
        // its own.
        "input_required"
    } else {
        "ok"
    }
}

/// How a tool call ended, as records and metrics name it.
pub(super) fn outcome(answer: &Result<Answer, Failure>) -> &'static str {
    match answer {
        Ok(a) => a.response.as_ref().map_or("no_response", response_outcome),
        Err(Failure::Timeout) => "timeout",
        Err(Failure::Unreachable) => "unreachable",
        Err(Failure::SessionEnded) => "session_ended",
        Err(Failure::Refused(_)) => "refused",
        Err(Failure::Misconfigured) => "misconfigured",
    }
}
