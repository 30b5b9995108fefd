//! Settlement: what a request owes once it is answered (its usage record,
//! and its reservation reconciled), from the state admission carried, and
//! the write that makes it durable. [`super::admission::Admission`] is the
//! obligation to run it exactly once; expired leases run it too.

use super::Gateway;
use super::reserve::Reserved;
use crate::backend::{BackendKind, Usage};
use crate::cost::Prices;
use crate::domain::{Settlement, UsageRecord};
use crate::observe;
use crate::ports::{Accounting, Ports};
use crate::request::Endpoint;

/// Per-request state carried from admission to settlement.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    pub(super) request_id: String,
    pub(super) key_id: String,
    pub(super) model: String,
    pub(super) backend: BackendKind,
    /// The deployment that served it (or was tried last).
    pub(super) deployment: Option<String>,
    /// The prices of what served it (the deployment's, else the model's).
    pub(super) prices: Option<Prices>,
    pub(super) endpoint: Endpoint,
    pub(super) started_ms: i64,
    pub(super) reserved: Reserved,
    pub(super) prompt_bound: u64,
    pub(super) stream: bool,
    /// The request's span (see [`observe::request_span`]).
    pub(super) span: tracing::Span,
}

impl Ctx {
    /// The settlement for this request. Without reported usage, what was
    /// generated is estimated: the prompt at ~4 bytes a token, and one
    /// token per relayed output chunk. A request that produced nothing and
    /// failed is charged nothing.
    pub(super) fn settlement(
        &self,
        usage: Option<Usage>,
        output_chunks: i64,
        status: u16,
        error: Option<String>,
        now_ms: i64,
    ) -> Settlement {
        let reported = usage.is_some();
        let usage = usage.unwrap_or_else(|| {
            if status == 200 || output_chunks > 0 {
                let prompt = i64::try_from(self.prompt_bound.div_ceil(4)).unwrap_or(i64::MAX);
                Usage::reported(prompt, output_chunks)
            } else {
                Usage::default()
            }
        });
        Settlement {
            key_id: self.key_id.clone(),
            reserved: self.reserved.tokens,
            reserved_money: self.reserved.money,
            quota_window: self.reserved.quota_window,
            budget_window: self.reserved.budget_window,
            usage: UsageRecord {
                request_id: self.request_id.clone(),
                key_id: self.key_id.clone(),
                model: self.model.clone(),
                backend: self.backend.as_str().to_owned(),
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                cached_tokens: usage.cached_tokens,
                cost_nanos: self.prices.map(|p| p.cost_nanos(&usage)),
                status,
                usage_reported: reported,
                stream: self.stream,
                endpoint: Some(self.endpoint.as_str().to_owned()),
                deployment: self.deployment.clone(),
                error,
                latency_ms: now_ms - self.started_ms,
                created_at: now_ms,
                arguments: None,
            },
        }
    }
}

impl<P: Ports> Gateway<P> {
    /// Write the settlement, retrying a failing store: a usage record must
    /// not be lost. Settling is idempotent per request id.
    pub(super) async fn settle(&self, s: Settlement) {
        let u = &s.usage;
        if s.reserved > 0 && s.charge() > s.reserved {
            tracing::warn!(request_id = %u.request_id, key_id = %u.key_id, model = %u.model,
                reported = u.total_tokens(), reserved = s.reserved,
                "upstream reported more tokens than were reserved: charged in full");
        }
        tracing::info!(request_id = %u.request_id, key_id = %u.key_id, model = %u.model, backend = %u.backend,
            endpoint = u.endpoint.as_deref().unwrap_or(""), deployment = u.deployment.as_deref().unwrap_or(""),
            status = u.status, latency_ms = u.latency_ms, prompt_tokens = u.prompt_tokens,
            completion_tokens = u.completion_tokens, cached_tokens = u.cached_tokens,
            cost_nanos = u.cost_nanos.unwrap_or(0), usage_reported = u.usage_reported, stream = u.stream,
            error = u.error.as_deref().unwrap_or(""), "completed");
        let accounts = self.ports().accounts();
        let begun_us = self.ports().monotonic_us();
        for attempt in 0..5u32 {
            match accounts.settle(&s).await {
                Ok(()) => {
                    let us = self.ports().monotonic_us().saturating_sub(begun_us);
                    observe::overhead("settle", us);
                    return;
                }
                Err(e) => {
                    tracing::warn!(request_id = %u.request_id, attempt, error = %e, "settlement failed");
                    self.ports().sleep(50 << attempt).await;
                }
            }
        }
        tracing::error!(request_id = %u.request_id, key_id = %u.key_id, tokens = u.total_tokens(),
            reserved = s.reserved, "settlement lost after retries");
    }
}
