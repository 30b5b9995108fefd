//! Rows as stored, and their domain records.

use std::collections::BTreeMap;

use modelgate_core::backend::{BackendKind, MessagesApi, ResponsesApi};
use modelgate_core::domain::{ApiKey, KeyStatus, Model, UsageRecord};
use modelgate_core::error::StoreError;
use modelgate_core::period::Period;
use modelgate_core::secret::Secret;
use serde::{Deserialize, Serialize};

fn parse_list(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}

/// A key row as stored (also the KV cache's record of a key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: Secret,
    pub status: String,
    pub admin: i64,
    pub rpm: Option<i64>,
    pub quota: Option<i64>,
    pub quota_used: i64,
    pub quota_reserved: i64,
    pub allowed_models: String,
    pub allowed_ips: String,
    pub default_model: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    #[serde(default)]
    pub quota_period: Option<String>,
    #[serde(default)]
    pub quota_window: i64,
    #[serde(default)]
    pub budget_nanos: Option<i64>,
    #[serde(default)]
    pub budget_used_nanos: i64,
    #[serde(default)]
    pub budget_reserved_nanos: i64,
    #[serde(default)]
    pub budget_period: Option<String>,
    #[serde(default)]
    pub budget_window: i64,
    #[serde(default)]
    pub tpm: Option<i64>,
    #[serde(default)]
    pub model_limits: Option<String>,
    #[serde(default)]
    pub allowed_tools: Option<String>,
}

impl KeyRow {
    /// The domain record.
    pub fn into_key(self) -> Result<ApiKey, StoreError> {
        Ok(ApiKey {
            status: KeyStatus::parse(&self.status).unwrap_or(KeyStatus::Disabled),
            admin: self.admin != 0,
            rpm: self.rpm.and_then(|r| u32::try_from(r).ok()),
            tpm: self.tpm.and_then(|r| u32::try_from(r).ok()),
            model_limits: match self.model_limits.as_deref() {
                None | Some("") => BTreeMap::new(),
                Some(t) => serde_json::from_str(t)
                    .map_err(|e| StoreError::Corrupt(format!("model_limits: {e}")))?,
            },
            allowed_models: parse_list(&self.allowed_models)?,
            allowed_ips: parse_list(&self.allowed_ips)?,
            allowed_tools: parse_list(self.allowed_tools.as_deref().unwrap_or("[]"))?,
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            hash: self.key_hash,
            quota: self.quota,
            quota_used: self.quota_used,
            quota_reserved: self.quota_reserved,
            default_model: self.default_model,
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_used_at: self.last_used_at,
            quota_period: Period::parse(self.quota_period.as_deref().unwrap_or("")),
            quota_window: self.quota_window,
            budget_nanos: self.budget_nanos,
            budget_used_nanos: self.budget_used_nanos,
            budget_reserved_nanos: self.budget_reserved_nanos,
            budget_period: Period::parse(self.budget_period.as_deref().unwrap_or("")),
            budget_window: self.budget_window,
        })
    }

    /// The row of a domain record.
    pub fn from_key(k: &ApiKey) -> Self {
        let json = |l: &[String]| serde_json::to_string(l).unwrap_or_else(|_| "[]".into());
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            key_hash: k.hash.clone(),
            status: k.status.as_str().to_owned(),
            admin: i64::from(k.admin),
            rpm: k.rpm.map(i64::from),
            tpm: k.tpm.map(i64::from),
            model_limits: (!k.model_limits.is_empty())
                .then(|| serde_json::to_string(&k.model_limits).ok())
                .flatten(),
            quota: k.quota,
            quota_used: k.quota_used,
            quota_reserved: k.quota_reserved,
            allowed_models: json(&k.allowed_models),
            allowed_ips: json(&k.allowed_ips),
            allowed_tools: Some(json(&k.allowed_tools)),
            default_model: k.default_model.clone(),
            expires_at: k.expires_at,
            created_at: k.created_at,
            updated_at: k.updated_at,
            last_used_at: k.last_used_at,
            quota_period: Some(k.quota_period.as_str().to_owned()),
            quota_window: k.quota_window,
            budget_nanos: k.budget_nanos,
            budget_used_nanos: k.budget_used_nanos,
            budget_reserved_nanos: k.budget_reserved_nanos,
            budget_period: Some(k.budget_period.as_str().to_owned()),
            budget_window: k.budget_window,
        }
    }
}

/// A model row as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ModelRow {
    pub id: String,
    pub name: String,
    pub backend: String,
    pub base_url: String,
    pub fallback_urls: String,
    pub upstream_model: String,
    pub api_key: Option<Secret>,
    pub enabled: i64,
    pub stream_usage: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub responses_api: Option<String>,
    /// Explicit deployments, as [`modelgate_core::deployment::to_stored`] writes them.
    #[serde(default)]
    pub deployments: Option<Secret>,
    /// Prices, as JSON.
    #[serde(default)]
    pub prices: Option<String>,
    #[serde(default)]
    pub messages_api: Option<String>,
}

impl ModelRow {
    /// The domain record.
    pub fn into_model(self) -> Result<Model, StoreError> {
        Ok(Model {
            backend: BackendKind::parse(&self.backend)
                .ok_or_else(|| StoreError::Corrupt(format!("backend {}", self.backend)))?,
            fallback_urls: parse_list(&self.fallback_urls)?,
            enabled: self.enabled != 0,
            stream_usage: self.stream_usage != 0,
            responses_api: match self.responses_api.as_deref() {
                None => None,
                Some(r) => Some(
                    ResponsesApi::parse(r)
                        .ok_or_else(|| StoreError::Corrupt(format!("responses_api {r}")))?,
                ),
            },
            messages_api: match self.messages_api.as_deref() {
                None => None,
                Some(r) => Some(
                    MessagesApi::parse(r)
                        .ok_or_else(|| StoreError::Corrupt(format!("messages_api {r}")))?,
                ),
            },
            deployments: modelgate_core::deployment::from_stored(
                self.deployments.as_ref().map(Secret::expose),
            )
            .map_err(|e| StoreError::Corrupt(format!("deployments: {e}")))?,
            prices: match self.prices.as_deref() {
                None | Some("") => None,
                Some(p) => Some(
                    serde_json::from_str(p)
                        .map_err(|e| StoreError::Corrupt(format!("prices: {e}")))?,
                ),
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

    /// The row of a domain record.
    pub fn from_model(m: &Model) -> Self {
        Self {
            id: m.id.clone(),
            name: m.name.clone(),
            backend: m.backend.as_str().to_owned(),
            base_url: m.base_url.clone(),
            fallback_urls: serde_json::to_string(&m.fallback_urls).unwrap_or_else(|_| "[]".into()),
            upstream_model: m.upstream_model.clone(),
            api_key: m.api_key.clone(),
            enabled: i64::from(m.enabled),
            stream_usage: i64::from(m.stream_usage),
            created_at: m.created_at,
            updated_at: m.updated_at,
            responses_api: m.responses_api.map(|r| r.as_str().to_owned()),
            deployments: modelgate_core::deployment::to_stored(&m.deployments).map(Secret::from),
            prices: m.prices.and_then(|p| serde_json::to_string(&p).ok()),
            messages_api: m.messages_api.map(|r| r.as_str().to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqlValue, key_patch, text};
    use modelgate_core::domain::KeyPatch;

    #[test]
    fn patches_set_only_what_is_given() {
        let p = KeyPatch {
            rpm: Some(None),
            name: Some("n".into()),
            ..KeyPatch::default()
        };
        let (sql, v) = key_patch("key_1", p, 7);
        assert_eq!(
            sql,
            "UPDATE api_keys SET updated_at = ?1, name = ?2, rpm = ?3 WHERE id = ?4"
        );
        assert_eq!(
            v,
            vec![SqlValue::Int(7), text("n"), SqlValue::Null, text("key_1")]
        );
    }

    #[test]
    fn key_rows_round_trip() {
        let row = KeyRow {
            id: "key_1".into(),
            name: "n".into(),
            prefix: "mg-...".into(),
            key_hash: "h".into(),
            status: "active".into(),
            admin: 1,
            rpm: Some(5),
            quota: None,
            quota_used: 3,
            quota_reserved: 0,
            allowed_models: "[\"m\"]".into(),
            allowed_ips: "[]".into(),
            default_model: None,
            expires_at: None,
            created_at: 1,
            updated_at: 2,
            last_used_at: None,
            quota_period: Some("monthly".into()),
            quota_window: 1_000,
            budget_nanos: Some(5_000_000_000),
            budget_used_nanos: 7,
            budget_reserved_nanos: 1,
            budget_period: Some("none".into()),
            budget_window: 0,
            tpm: Some(10_000),
            model_limits: Some(r#"{"big":{"rpm":2}}"#.into()),
            allowed_tools: Some(r#"["docs"]"#.into()),
        };
        let key = row.clone().into_key().unwrap();
        assert_eq!(key.allowed_tools, ["docs"]);
        assert_eq!(key.quota_period, Period::Monthly);
        assert!(key.admin && key.allowed_models == vec!["m"]);
        assert_eq!(KeyRow::from_key(&key), row);
    }
}

/// A usage record as stored (flags as integers).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[allow(missing_docs)]
pub struct RecordRow {
    pub request_id: String,
    pub key_id: String,
    pub model: String,
    pub backend: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cost_nanos: Option<i64>,
    pub status: i64,
    pub usage_reported: i64,
    pub stream: i64,
    pub endpoint: Option<String>,
    pub deployment: Option<String>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub created_at: i64,
    pub arguments: Option<String>,
}

impl RecordRow {
    /// The record.
    pub fn into_record(self) -> UsageRecord {
        UsageRecord {
            request_id: self.request_id,
            key_id: self.key_id,
            model: self.model,
            backend: self.backend,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cached_tokens: self.cached_tokens,
            cost_nanos: self.cost_nanos,
            status: u16::try_from(self.status).unwrap_or_default(),
            usage_reported: self.usage_reported != 0,
            stream: self.stream != 0,
            endpoint: self.endpoint,
            deployment: self.deployment,
            error: self.error,
            latency_ms: self.latency_ms,
            created_at: self.created_at,
            arguments: self.arguments,
        }
    }
}
