//! A mock request's plan: what the upstream model name asks the mock to
//! do (see the option table in the module above).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

/// Options parsed from the model name.
pub(super) struct Plan {
    pub(super) tokens: u64,
    pub(super) ttft: Duration,
    pub(super) itl: Duration,
    pub(super) status: Option<u16>,
    pub(super) fault: String,
    pub(super) after: u64,
    pub(super) fail_first: u64,
    pub(super) fail_status: u16,
    pub(super) retry_after: Option<u64>,
    pub(super) usage: bool,
    pub(super) cached: u64,
    pub(super) cache_write: (u64, u64),
    pub(super) report_tokens: Option<String>,
    pub(super) stamp: bool,
    pub(super) redirect_port: Option<u16>,
    pub(super) tools: bool,
    /// The tool to call, and arguments given for it.
    pub(super) tool: Option<(String, serde_json::Map<String, Value>)>,
    pub(super) stateful: bool,
}

impl Plan {
    pub(super) fn from_model(model: &str) -> Self {
        let opts: HashMap<&str, &str> = model
            .split_once('?')
            .map(|(_, q)| q.split('&').filter_map(|kv| kv.split_once('=')).collect())
            .unwrap_or_default();
        let n = |k: &str, d: u64| opts.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        Self {
            tokens: n("tokens", 8),
            ttft: Duration::from_millis(n("ttft_ms", 0)),
            itl: Duration::from_millis(n("itl_ms", 0)),
            status: opts.get("status").and_then(|v| v.parse().ok()),
            fault: opts.get("fault").map(|s| s.to_string()).unwrap_or_default(),
            after: n("after", 2),
            fail_first: n("fail_first", 0),
            fail_status: opts
                .get("fail_status")
                .and_then(|v| v.parse().ok())
                .unwrap_or(503),
            retry_after: opts.get("retry_after").and_then(|v| v.parse().ok()),
            usage: n("no_usage", 0) == 0,
            cached: n("cached", 0),
            cache_write: (n("cache_write", 0), n("cache_write_1h", 0)),
            report_tokens: opts.get("report_tokens").map(|s| s.to_string()),
            stamp: n("stamp", 0) == 1,
            redirect_port: opts.get("redirect_port").and_then(|v| v.parse().ok()),
            tools: n("no_tools", 0) == 0,
            tool: opts.get("tool").map(|name| {
                let args = opts
                    .iter()
                    .filter_map(|(k, v)| Some((k.strip_prefix("arg_")?.to_owned(), json!(v))))
                    .collect();
                ((*name).to_owned(), args)
            }),
            stateful: n("stateful", 0) == 1,
        }
    }
}
