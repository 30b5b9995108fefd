//! The table's key and model items: this store's own mapping of the
//! domain records, so that a change to the SQL schema never changes a
//! DynamoDB table. The attribute names and encodings are those the first
//! tables were written with (lists, limits, deployments and prices as JSON
//! strings; flags as 0/1), and stay readable.

use std::collections::BTreeMap;

use modelgate_core::backend::{BackendKind, MessagesApi, ResponsesApi};
use modelgate_core::deployment;
use modelgate_core::domain::{ApiKey, KeyStatus, Model};
use modelgate_core::error::StoreError;
use modelgate_core::period::Period;
use modelgate_core::secret::Secret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

/// A key item (besides `pk`, `sk`, and the `quota_left`/`budget_left`
/// the writes keep, see [`crate::counters`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyItem {
    pub(crate) id: String,
    name: String,
    prefix: String,
    pub(crate) key_hash: Secret,
    status: String,
    admin: i64,
    rpm: Option<i64>,
    #[serde(default)]
    tpm: Option<i64>,
    #[serde(default)]
    model_limits: Option<String>,
    pub(crate) quota: Option<i64>,
    pub(crate) quota_used: i64,
    pub(crate) quota_reserved: i64,
    #[serde(default)]
    quota_period: Option<String>,
    #[serde(default)]
    pub(crate) quota_window: i64,
    #[serde(default)]
    pub(crate) budget_nanos: Option<i64>,
    #[serde(default)]
    pub(crate) budget_used_nanos: i64,
    #[serde(default)]
    pub(crate) budget_reserved_nanos: i64,
    #[serde(default)]
    budget_period: Option<String>,
    #[serde(default)]
    pub(crate) budget_window: i64,
    allowed_models: String,
    allowed_ips: String,
    /// Absent from items written before it existed, and while empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_tools: Option<String>,
    default_model: Option<String>,
    expires_at: Option<i64>,
    pub(crate) created_at: i64,
    updated_at: i64,
    last_used_at: Option<i64>,
}

impl KeyItem {
    pub(crate) fn of(k: &ApiKey) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            key_hash: k.hash.clone(),
            status: k.status.as_str().to_owned(),
            admin: i64::from(k.admin),
            rpm: k.rpm.map(i64::from),
            tpm: k.tpm.map(i64::from),
            model_limits: (!k.model_limits.is_empty()).then(|| json(&k.model_limits)),
            quota: k.quota,
            quota_used: k.quota_used,
            quota_reserved: k.quota_reserved,
            quota_period: Some(k.quota_period.as_str().to_owned()),
            quota_window: k.quota_window,
            budget_nanos: k.budget_nanos,
            budget_used_nanos: k.budget_used_nanos,
            budget_reserved_nanos: k.budget_reserved_nanos,
            budget_period: Some(k.budget_period.as_str().to_owned()),
            budget_window: k.budget_window,
            allowed_models: json(&k.allowed_models),
            allowed_ips: json(&k.allowed_ips),
            allowed_tools: (!k.allowed_tools.is_empty()).then(|| json(&k.allowed_tools)),
            default_model: k.default_model.clone(),
            expires_at: k.expires_at,
            created_at: k.created_at,
            updated_at: k.updated_at,
            last_used_at: k.last_used_at,
        }
    }

    pub(crate) fn into_key(self) -> Result<ApiKey, StoreError> {
        let period = |p: Option<String>| Period::parse(p.as_deref().unwrap_or(""));
        Ok(ApiKey {
            status: KeyStatus::parse(&self.status).unwrap_or(KeyStatus::Disabled),
            admin: self.admin != 0,
            rpm: self.rpm.and_then(|r| u32::try_from(r).ok()),
            tpm: self.tpm.and_then(|r| u32::try_from(r).ok()),
            model_limits: match self.model_limits.as_deref() {
                None | Some("") => BTreeMap::new(),
                Some(t) => parse("model_limits", t)?,
            },
            allowed_models: parse("allowed_models", &self.allowed_models)?,
            allowed_ips: parse("allowed_ips", &self.allowed_ips)?,
            allowed_tools: parse(
                "allowed_tools",
                self.allowed_tools.as_deref().unwrap_or("[]"),
            )?,
            quota_period: period(self.quota_period),
            budget_period: period(self.budget_period),
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            hash: self.key_hash,
            quota: self.quota,
            quota_used: self.quota_used,
            quota_reserved: self.quota_reserved,
            quota_window: self.quota_window,
            budget_nanos: self.budget_nanos,
            budget_used_nanos: self.budget_used_nanos,
            budget_reserved_nanos: self.budget_reserved_nanos,
            budget_window: self.budget_window,
            default_model: self.default_model,
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_used_at: self.last_used_at,
        })
    }
}

/// A model item (besides `pk` and `sk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModelItem {
    pub(crate) id: String,
    pub(crate) name: String,
    backend: String,
    base_url: String,
    fallback_urls: String,
    upstream_model: String,
    api_key: Option<Secret>,
    enabled: i64,
    stream_usage: i64,
    created_at: i64,
    pub(crate) updated_at: i64,
    #[serde(default)]
    responses_api: Option<String>,
    /// As [`deployment::to_stored`] writes them (their keys included).
    #[serde(default)]
    deployments: Option<Secret>,
    #[serde(default)]
    prices: Option<String>,
    #[serde(default)]
    messages_api: Option<String>,
}

impl ModelItem {
    pub(crate) fn of(m: &Model) -> Self {
        Self {
            id: m.id.clone(),
            name: m.name.clone(),
            backend: m.backend.as_str().to_owned(),
            base_url: m.base_url.clone(),
            fallback_urls: json(&m.fallback_urls),
            upstream_model: m.upstream_model.clone(),
            api_key: m.api_key.clone(),
            enabled: i64::from(m.enabled),
            stream_usage: i64::from(m.stream_usage),
            created_at: m.created_at,
            updated_at: m.updated_at,
            responses_api: m.responses_api.map(|r| r.as_str().to_owned()),
            deployments: deployment::to_stored(&m.deployments).map(Secret::from),
            prices: m.prices.map(|p| json(&p)),
            messages_api: m.messages_api.map(|r| r.as_str().to_owned()),
        }
    }

    pub(crate) fn into_model(self) -> Result<Model, StoreError> {
        let responses_api = match self.responses_api.as_deref() {
            None => None,
            Some(r) => Some(ResponsesApi::parse(r).ok_or_else(|| corrupt("responses_api", r))?),
        };
        let messages_api = match self.messages_api.as_deref() {
            None => None,
            Some(r) => Some(MessagesApi::parse(r).ok_or_else(|| corrupt("messages_api", r))?),
        };
        Ok(Model {
            backend: BackendKind::parse(&self.backend)
                .ok_or_else(|| corrupt("backend", &self.backend))?,
            fallback_urls: parse("fallback_urls", &self.fallback_urls)?,
            enabled: self.enabled != 0,
            stream_usage: self.stream_usage != 0,
            responses_api,
            messages_api,
            deployments: deployment::from_stored(self.deployments.as_ref().map(Secret::expose))
                .map_err(|e| corrupt("deployments", e))?,
            prices: match self.prices.as_deref() {
                None | Some("") => None,
                Some(p) => Some(parse("prices", p)?),
            },
            id: self.id,
            name: self.name,
            base_url: self.base_url,
            upstream_model: self.upstream_model,
            api_key: self.api_key,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{from_item, to_item};

    /// An item as the first tables hold it (attribute names and encodings)
    /// reads as the record, and the record writes back the same item.
    #[test]
    fn a_key_item_of_the_first_tables_reads_and_writes_back() {
        let item: crate::Item = serde_dynamo::to_item(serde_json::json!({
            "id": "key_1", "name": "n", "prefix": "mg-...", "key_hash": "h",
            "status": "active", "admin": 1, "rpm": 5, "tpm": 10_000,
            "model_limits": r#"{"big":{"rpm":2}}"#, "quota": null, "quota_used": 3,
            "quota_reserved": 0, "quota_period": "monthly", "quota_window": 1_000,
            "budget_nanos": 5_000_000_000_i64, "budget_used_nanos": 7,
            "budget_reserved_nanos": 1, "budget_period": "none", "budget_window": 0,
            "allowed_models": "[\"m\"]", "allowed_ips": "[]", "default_model": null,
            "expires_at": null, "created_at": 1, "updated_at": 2, "last_used_at": null,
        }))
        .unwrap();
        let read: KeyItem = from_item(item.clone()).unwrap();
        let key = read.clone().into_key().unwrap();
        assert_eq!(key.quota_period, Period::Monthly);
        assert!(key.admin && key.allowed_models == vec!["m"]);
        assert_eq!(key.model_limits["big"].rpm, Some(2));
        let mut written = to_item("key", "key_1", &KeyItem::of(&key)).unwrap();
        written.remove("pk");
        written.remove("sk");
        assert_eq!(written, item);
    }

    #[test]
    fn a_model_item_reads_and_writes_back() {
        let item: crate::Item = serde_dynamo::to_item(serde_json::json!({
            "id": "mdl_1", "name": "m", "backend": "vllm", "base_url": "http://u",
            "fallback_urls": "[]", "upstream_model": "up", "api_key": null, "enabled": 1,
            "stream_usage": 0, "created_at": 1, "updated_at": 2, "responses_api": "bridge",
            "deployments": null, "prices": null, "messages_api": "native",
        }))
        .unwrap();
        let model = from_item::<ModelItem>(item.clone())
            .unwrap()
            .into_model()
            .unwrap();
        assert_eq!(model.responses_api, Some(ResponsesApi::Bridge));
        assert_eq!(model.messages_api, Some(MessagesApi::Native));
        // An item written before the attribute existed reads as the default.
        let mut older = item.clone();
        older.remove("messages_api");
        let older = from_item::<ModelItem>(older).unwrap().into_model().unwrap();
        assert_eq!(older.messages_api, None);
        assert!(model.enabled && !model.stream_usage);
        let mut written = to_item("model", "mdl_1", &ModelItem::of(&model)).unwrap();
        written.remove("pk");
        written.remove("sk");
        assert_eq!(written, item);
    }
}
