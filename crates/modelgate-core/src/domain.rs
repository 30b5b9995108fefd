//! The records the gateway keeps: keys, models, usage.
//!
//! Secrets never serialize: a key's hash and a model's upstream key are
//! `skip_serializing`, so no admin answer can carry them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::backend::{BackendKind, MessagesApi, ResponsesApi};
use crate::cost::Prices;
use crate::deployment::Deployment;
use crate::period::Period;
use crate::secret::Secret;

/// Lifecycle of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Refused until re-enabled.
    Disabled,
    /// Refused for good.
    Revoked,
}

impl KeyStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Revoked => "revoked",
        }
    }

    /// Parse the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// An API key as stored: never the plaintext, and the hash never leaves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    /// Stable id (`key_` + hex).
    pub id: String,
    /// Human label.
    pub name: String,
    /// The first characters of the key, for recognising it in a list.
    pub prefix: String,
    /// SHA-256 of the key, hex. Never serialized.
    #[serde(skip_serializing)]
    pub hash: Secret,
    /// Lifecycle.
    pub status: KeyStatus,
    /// May use the admin API.
    pub admin: bool,
    /// Requests per minute; `None` means the gateway default.
    pub rpm: Option<u32>,
    /// Tokens per minute; `None` means unlimited.
    pub tpm: Option<u32>,
    /// The key's own limits on some models (besides its limits overall).
    pub model_limits: BTreeMap<String, ModelLimit>,
    /// Token quota; `None` means unlimited.
    pub quota: Option<i64>,
    /// Tokens charged so far.
    pub quota_used: i64,
    /// Tokens reserved by requests in flight.
    pub quota_reserved: i64,
    /// When `quota_used` starts from zero again.
    pub quota_period: Period,
    /// The start (epoch ms) of the window `quota_used` was counted in (0
    /// without a period); a later window counts from zero.
    pub quota_window: i64,
    /// Money budget, nano-dollars; `None` means unlimited.
    pub budget_nanos: Option<i64>,
    /// Money spent in `budget_window`, nano-dollars (counted with or
    /// without a budget).
    pub budget_used_nanos: i64,
    /// Money reserved by requests in flight, nano-dollars.
    pub budget_reserved_nanos: i64,
    /// When `budget_used_nanos` starts from zero again.
    pub budget_period: Period,
    /// Like `quota_window`, for the budget.
    pub budget_window: i64,
    /// Public model names this key may use; empty means all.
    pub allowed_models: Vec<String>,
    /// IPs or CIDRs the key may be used from; empty means anywhere.
    pub allowed_ips: Vec<String>,
    /// MCP servers (`name`) and tools (`{server}_{tool}`) this key may use
    /// through `/mcp`; empty means all.
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// Model used when a request names none.
    pub default_model: Option<String>,
    /// Expiry, ms since the epoch.
    pub expires_at: Option<i64>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed, ms since the epoch.
    pub updated_at: i64,
    /// Last request settled, ms since the epoch.
    pub last_used_at: Option<i64>,
}

/// A key's limits on one model: requests and tokens per minute (`None`:
/// only the key's own limits apply).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLimit {
    /// Requests per minute on the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens per minute on the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u32>,
}

/// A key to insert (the gateway generated the secret and hashed it).
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key record, with `quota_used` and `quota_reserved` zero.
    pub key: ApiKey,
}

/// Fields an admin may change on a key. Absent fields stay; `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    /// New label.
    pub name: Option<String>,
    /// New status.
    pub status: Option<KeyStatus>,
    /// New RPM (`null`: gateway default).
    #[serde(default, deserialize_with = "double_option")]
    pub rpm: Option<Option<u32>>,
    /// New TPM (`null`: unlimited).
    #[serde(default, deserialize_with = "double_option")]
    pub tpm: Option<Option<u32>>,
    /// New per-model limits (`{}`: none).
    pub model_limits: Option<BTreeMap<String, ModelLimit>>,
    /// New quota (`null`: unlimited).
    #[serde(default, deserialize_with = "double_option")]
    pub quota: Option<Option<i64>>,
    /// Set `quota_used` (e.g. 0 to reset a period).
    pub quota_used: Option<i64>,
    /// New quota period (its window starts afresh).
    pub quota_period: Option<Period>,
    /// New budget in USD (`null`: unlimited), kept in nano-dollars.
    #[serde(
        default,
        rename = "budget_usd",
        deserialize_with = "crate::cost::usd_patch"
    )]
    pub budget_nanos: Option<Option<i64>>,
    /// Set what was spent in the current window, USD (e.g. 0 to reset it).
    #[serde(
        default,
        rename = "budget_used_usd",
        deserialize_with = "crate::cost::usd_set"
    )]
    pub budget_used_nanos: Option<i64>,
    /// New budget period (its window starts afresh).
    pub budget_period: Option<Period>,
    /// The window a set `quota_used` counts in (the gateway's, not the
    /// client's: the current one).
    #[serde(skip)]
    pub quota_window: Option<i64>,
    /// Likewise for a set `budget_used_usd`.
    #[serde(skip)]
    pub budget_window: Option<i64>,
    /// New model allowlist.
    pub allowed_models: Option<Vec<String>>,
    /// New IP allowlist.
    pub allowed_ips: Option<Vec<String>>,
    /// New MCP server and tool allowlist.
    pub allowed_tools: Option<Vec<String>>,
    /// New default model.
    #[serde(default, deserialize_with = "double_option")]
    pub default_model: Option<Option<String>>,
    /// New expiry.
    #[serde(default, deserialize_with = "double_option")]
    pub expires_at: Option<Option<i64>>,
}

impl KeyPatch {
    /// Which counters (quota, budget) the patch sets afresh: a figure set
    /// by hand, or a new period (whose window starts again).
    pub fn resets(&self) -> (bool, bool) {
        (
            self.quota_used.is_some() || self.quota_period.is_some(),
            self.budget_used_nanos.is_some() || self.budget_period.is_some(),
        )
    }

    /// Whether the patch changes what the counters enforce or hold.
    pub fn touches_counters(&self) -> bool {
        let (q, b) = self.resets();
        q || b || self.quota.is_some() || self.budget_nanos.is_some()
    }
}

/// A model: a public name routed to one backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    /// Stable id (`mdl_` + hex).
    pub id: String,
    /// Public name clients send as `model`.
    pub name: String,
    /// Which protocol the upstream speaks.
    pub backend: BackendKind,
    /// Upstream base URL. Admin-only; never in client answers.
    pub base_url: String,
    /// More base URLs to try, in order, before the first byte.
    pub fallback_urls: Vec<String>,
    /// The model name the upstream knows.
    pub upstream_model: String,
    /// The upstream's key. Never serialized.
    #[serde(skip_serializing)]
    pub api_key: Option<Secret>,
    /// Whether clients may use it.
    pub enabled: bool,
    /// Ask OpenAI-compatible upstreams for usage on streams.
    pub stream_usage: bool,
    /// How `/v1/responses` is served (`None`: the backend's default, see
    /// [`BackendKind::default_responses_api`]).
    pub responses_api: Option<ResponsesApi>,
    /// How `/v1/messages` is served (`None`: the backend's default, see
    /// [`BackendKind::default_messages_api`]).
    #[serde(default)]
    pub messages_api: Option<MessagesApi>,
    /// Explicit deployments (empty: the backend fields and fallback URLs
    /// are its deployments; see [`Model::deployments`]). The admin API
    /// shows them without their keys.
    #[serde(skip_serializing)]
    pub deployments: Vec<Deployment>,
    /// What its tokens cost (a deployment's own prices win).
    pub prices: Option<Prices>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed, ms since the epoch.
    pub updated_at: i64,
}

impl Model {
    /// Whether an upstream key is set (what the admin API shows instead of it).
    pub fn has_api_key(&self) -> bool {
        self.api_key
            .as_ref()
            .is_some_and(|k| !k.expose().is_empty())
    }
}

/// A model to insert.
#[derive(Debug, Clone)]
pub struct NewModel {
    /// The model record.
    pub model: Model,
}

/// Fields an admin may change on a model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPatch {
    /// New public name.
    pub name: Option<String>,
    /// New backend type.
    pub backend: Option<BackendKind>,
    /// New base URL.
    pub base_url: Option<String>,
    /// New fallbacks.
    pub fallback_urls: Option<Vec<String>>,
    /// New upstream model name.
    pub upstream_model: Option<String>,
    /// New upstream key (`null` or "" clears).
    #[serde(default, deserialize_with = "double_option")]
    pub api_key: Option<Option<Secret>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Stream usage opt-in.
    pub stream_usage: Option<bool>,
    /// How `/v1/responses` is served (`null`: the backend's default).
    #[serde(default, deserialize_with = "double_option")]
    pub responses_api: Option<Option<ResponsesApi>>,
    /// How `/v1/messages` is served (`null`: the backend's default).
    #[serde(default, deserialize_with = "double_option")]
    pub messages_api: Option<Option<MessagesApi>>,
    /// New deployments (`[]`: back to the backend fields). A deployment
    /// without `api_key` keeps the key of the current one of its name.
    pub deployments: Option<Vec<Deployment>>,
    /// New prices (`null`: none).
    #[serde(default, deserialize_with = "double_option")]
    pub prices: Option<Option<Prices>>,
}

/// A reservation's lease: the quota a request in flight holds, and until
/// when. Written with the reservation and ended by the settlement; one that
/// outlives `expires_at` belonged to a process that died, and is settled as
/// abandoned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The request holding it.
    pub request_id: String,
    /// Key whose quota is held.
    pub key_id: String,
    /// Public model name (for the record written if it expires).
    pub model: String,
    /// Backend type (likewise).
    pub backend: String,
    /// Tokens held (set by the store when it reserves).
    pub amount: i64,
    /// Money held, nano-dollars (set by the store when it reserves).
    #[serde(default)]
    pub money: i64,
    /// When it was taken, ms since the epoch.
    pub created_at: i64,
    /// When it ends unless settled, ms since the epoch.
    pub expires_at: i64,
}

/// One finished request: what to write and what to charge, atomically.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settlement {
    /// Key charged.
    pub key_id: String,
    /// Tokens reserved at admission, released now.
    pub reserved: i64,
    /// Money reserved at admission (nano-dollars), released now.
    pub reserved_money: i64,
    /// The quota window the request was admitted in: its tokens count
    /// there, and nowhere if a later window has begun.
    pub quota_window: i64,
    /// Likewise for the budget.
    pub budget_window: i64,
    /// The usage record.
    pub usage: UsageRecord,
}

impl Settlement {
    /// Tokens charged to the key's quota: the recorded usage, all of it.
    /// An upstream that reports more than was reserved (one that bills a
    /// conversation it keeps, a chat template's hidden prompt) is charged
    /// in full: the quota may go past its limit, and the next request is
    /// refused, rather than usage being dropped.
    pub fn charge(&self) -> i64 {
        self.usage.total_tokens()
    }

    /// Money charged to the key's budget: the record's cost, all of it
    /// (as [`Self::charge`]).
    pub fn charge_money(&self) -> i64 {
        self.usage.cost_nanos.unwrap_or(0).max(0)
    }
}

/// What a request asks to reserve: a range of tokens and of money (the
/// store grants as much as is left up to the maximum, provided the minimum
/// is), each in the window of its counter's period at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ask {
    /// Least and most tokens.
    pub tokens: (i64, i64),
    /// Least and most nano-dollars.
    pub money: (i64, i64),
    /// The quota's window now (see [`crate::period`]).
    pub quota_window: i64,
    /// The budget's window now.
    pub budget_window: i64,
}

/// What a reservation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Tokens.
    pub tokens: i64,
    /// Nano-dollars.
    pub money: i64,
}

/// One usage record: exactly one per proxied request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The request id (also the `x-request-id` header).
    pub request_id: String,
    /// Key that made the request.
    pub key_id: String,
    /// Public model name.
    pub model: String,
    /// Backend type.
    pub backend: String,
    /// Prompt tokens charged.
    pub prompt_tokens: i64,
    /// Completion tokens charged.
    pub completion_tokens: i64,
    /// Of the prompt tokens, those served from the upstream's cache.
    #[serde(default)]
    pub cached_tokens: i64,
    /// What it cost, nano-dollars (`None`: its model has no prices).
    #[serde(default)]
    pub cost_nanos: Option<i64>,
    /// HTTP status the client got (200 for a stream that started).
    pub status: u16,
    /// Whether usage came from the upstream (`true`) or was estimated.
    pub usage_reported: bool,
    /// Whether it was a stream.
    pub stream: bool,
    /// Which API: `chat`, `completions`, `embeddings` or `responses`
    /// (`None` on records written before it was kept, and on abandoned
    /// requests settled from their lease).
    pub endpoint: Option<String>,
    /// The deployment that served it (`None`: none was reached, or a
    /// record from before deployments).
    pub deployment: Option<String>,
    /// Error code when the request failed, e.g. `upstream_timeout`.
    pub error: Option<String>,
    /// Milliseconds from admission to the end of the response.
    pub latency_ms: i64,
    /// When it finished, ms since the epoch.
    pub created_at: i64,
    /// A tool call's arguments as their shape: names and JSON types, never
    /// values (see [`crate::mcp::shape`]); `None` for other requests.
    #[serde(default)]
    pub arguments: Option<String>,
}

impl UsageRecord {
    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> i64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// Filter for usage reports. Times are ms since the epoch, `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageQuery {
    /// Start of range.
    pub from_ms: i64,
    /// End of range.
    pub to_ms: i64,
    /// Only this key.
    pub key_id: Option<String>,
    /// Only this model.
    pub model: Option<String>,
}

/// Filter for usage records, newest first: the report's filter, one API
/// (`endpoint`), and how many at most.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordQuery {
    /// Range, key and model.
    pub usage: UsageQuery,
    /// Only this API (`mcp`: tool calls).
    pub endpoint: Option<String>,
    /// Most records.
    pub limit: u32,
}

/// Usage summed for one day, key and model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Key id.
    pub key_id: String,
    /// Model name.
    pub model: String,
    /// Which API (see [`UsageRecord::endpoint`]).
    pub endpoint: Option<String>,
    /// Which deployment (see [`UsageRecord::deployment`]).
    #[serde(default)]
    pub deployment: Option<String>,
    /// Requests.
    pub requests: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Prompt tokens served from a cache.
    #[serde(default)]
    pub cached_tokens: i64,
    /// What the requests cost, nano-dollars (those without prices count
    /// 0); the admin API adds it as `cost_usd`.
    #[serde(default)]
    pub cost_nanos: i64,
    /// Requests that failed.
    pub errors: i64,
}

/// A stored Response: what `previous_response_id`, `item_reference` and
/// `GET /v1/responses/{id}` read back. The JSON columns are kept as text,
/// as the client sent and was answered, so every store keeps them alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// `resp_...`.
    pub id: String,
    /// The key that made it: only that key (or an admin) reads it.
    pub key_id: String,
    /// Public model name.
    pub model: String,
    /// The response it continued, if any.
    pub previous_response_id: Option<String>,
    /// The request's input items, a JSON array (a string input as one
    /// user message item).
    pub input: String,
    /// The Response object as answered, JSON.
    pub response: String,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Gone for every read from this time on (ms since the epoch).
    pub expires_at: i64,
}

/// What the admin's list of a key's stored responses shows of each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseSummary {
    /// `resp_...`.
    pub id: String,
    /// The key that made it.
    pub key_id: String,
    /// Public model name.
    pub model: String,
    /// The response it continued, if any.
    pub previous_response_id: Option<String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Gone from this time on, ms since the epoch.
    pub expires_at: i64,
}

impl StoredResponse {
    /// Its summary.
    pub fn summary(&self) -> ResponseSummary {
        ResponseSummary {
            id: self.id.clone(),
            key_id: self.key_id.clone(),
            model: self.model.clone(),
            previous_response_id: self.previous_response_id.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// Distinguish an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tells_null_from_absent() {
        let p: KeyPatch = serde_json::from_str(r#"{"rpm":null,"name":"x"}"#).unwrap();
        assert_eq!(p.rpm, Some(None));
        assert_eq!(p.quota, None);
        let p: KeyPatch = serde_json::from_str(r#"{"rpm":7}"#).unwrap();
        assert_eq!(p.rpm, Some(Some(7)));
    }

    #[test]
    fn patch_rejects_unknown_fields() {
        assert!(serde_json::from_str::<KeyPatch>(r#"{"hash":"x"}"#).is_err());
    }
}
