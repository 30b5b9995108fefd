//! Keys in the admin API: create (the plaintext shown once), read, list,
//! change and revoke; each shown with its counters as they stand in the
//! current window of their period, and when that window ends.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::parse_body;
use super::{Gateway, Response, json_response};
use crate::auth;
use crate::cost::nanos_to_usd;
use crate::domain::{ApiKey, KeyPatch, KeyStatus, ModelLimit, NewKey};
use crate::error::{GatewayError, RequestError};
use crate::period::{self, Period};
use crate::ports::{Accounting, KeyStore, Ports};

/// Body of `POST /admin/api/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    #[serde(default)]
    rpm: Option<u32>,
    #[serde(default)]
    tpm: Option<u32>,
    #[serde(default)]
    model_limits: BTreeMap<String, ModelLimit>,
    /// Absent: the default quota; `null`: unlimited.
    #[serde(default, deserialize_with = "crate::domain::double_option")]
    quota: Option<Option<i64>>,
    #[serde(default)]
    allowed_models: Vec<String>,
    #[serde(default)]
    allowed_ips: Vec<String>,
    #[serde(default)]
    allowed_tools: Vec<String>,
    #[serde(default)]
    default_model: Option<String>,
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    quota_period: Period,
    /// USD; absent or `null`: unlimited.
    #[serde(default, deserialize_with = "crate::cost::usd_patch")]
    budget_usd: Option<Option<i64>>,
    #[serde(default)]
    budget_period: Period,
}

fn check_name(name: &str) -> Result<(), GatewayError> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(RequestError::invalid(
            "'name' must be 1 to 200 printable characters.",
            Some("name"),
        )
        .into());
    }
    Ok(())
}

/// The highest tokens-per-minute limit (the GCRA keeps 6 µs a token).
const MAX_TPM: u32 = 10_000_000;

/// Most models a key may have limits of its own on.
const MAX_MODEL_LIMITS: usize = 64;

fn check_rates(rpm: Option<u32>, tpm: Option<u32>, param: &str) -> Result<(), GatewayError> {
    if rpm == Some(0) || rpm.is_some_and(|r| r > 1_000_000) {
        let msg = format!("'{param}rpm' must be from 1 to 1000000.");
        return Err(RequestError::invalid(msg, Some(&format!("{param}rpm"))).into());
    }
    if tpm == Some(0) || tpm.is_some_and(|t| t > MAX_TPM) {
        let msg = format!("'{param}tpm' must be from 1 to {MAX_TPM}, or null for unlimited.");
        return Err(RequestError::invalid(msg, Some(&format!("{param}tpm"))).into());
    }
    Ok(())
}

/// A key's limits on models: model names, each with a limit.
fn check_model_limits(limits: &BTreeMap<String, ModelLimit>) -> Result<(), GatewayError> {
    let invalid = |msg: &str| RequestError::invalid(msg, Some("model_limits"));
    if limits.len() > MAX_MODEL_LIMITS {
        return Err(invalid("'model_limits' may name at most 64 models.").into());
    }
    for (model, l) in limits {
        crate::request::valid_model(model)
            .map_err(|_| invalid("'model_limits' must be keyed by model names."))?;
        if l.rpm.is_none() && l.tpm.is_none() {
            return Err(invalid("Each of 'model_limits' needs 'rpm' or 'tpm'.").into());
        }
        check_rates(l.rpm, l.tpm, "model_limits.*.")?;
    }
    Ok(())
}

/// Most entries of a key's MCP allowlist.
const MAX_ALLOWED_TOOLS: usize = 256;

/// A key's MCP allowlist: server names and `{server}_{tool}` names.
fn check_tools(tools: &[String]) -> Result<(), GatewayError> {
    let valid = |t: &str| {
        let server = t.split_once('_').map_or(t, |(s, _)| s);
        t.len() <= 64
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && crate::mcp::server::check_name(server).is_ok()
    };
    if tools.len() > MAX_ALLOWED_TOOLS || !tools.iter().all(|t| valid(t)) {
        return Err(RequestError::invalid(
            format!("'allowed_tools' holds at most {MAX_ALLOWED_TOOLS} MCP server names or '{{server}}_{{tool}}' names."),
            Some("allowed_tools"),
        )
        .into());
    }
    Ok(())
}

fn check_limits(
    (rpm, tpm): (Option<u32>, Option<u32>),
    quota: Option<i64>,
    ips: &[String],
    models: &[String],
) -> Result<(), GatewayError> {
    check_rates(rpm, tpm, "")?;
    if quota.is_some_and(|q| q < 0) {
        return Err(RequestError::invalid(
            "'quota' must be 0 or more, or null for unlimited.",
            Some("quota"),
        )
        .into());
    }
    if let Some(bad) = ips.iter().find(|e| !auth::valid_ip_entry(e)) {
        let bad: String = bad.chars().filter(|c| !c.is_control()).take(64).collect();
        return Err(RequestError::invalid(
            format!("'{bad}' is not an IP, a CIDR or '*'."),
            Some("allowed_ips"),
        )
        .into());
    }
    for m in models {
        crate::request::valid_model(m).map_err(|_| {
            RequestError::invalid(
                "'allowed_models' must hold model names.",
                Some("allowed_models"),
            )
        })?;
    }
    Ok(())
}

/// A key as the admin API shows it: the stored record (never the hash),
/// with `quota_used` and the budget's spend as they count now (nothing of
/// a window that has ended), the current windows, when they end, and the
/// budget in USD.
fn key_view(k: &ApiKey, now_ms: i64) -> Value {
    let (qw, bw) = (
        k.quota_period.window(now_ms),
        k.budget_period.window(now_ms),
    );
    let budget_used = period::current(k.budget_used_nanos, k.budget_window, bw);
    let mut v = serde_json::to_value(k).unwrap_or(Value::Null);
    v["quota_used"] = json!(period::current(k.quota_used, k.quota_window, qw));
    v["quota_window"] = json!(qw);
    v["quota_resets_at"] = json!(k.quota_period.resets_at(now_ms));
    v["budget_used_nanos"] = json!(budget_used);
    v["budget_window"] = json!(bw);
    v["budget_resets_at"] = json!(k.budget_period.resets_at(now_ms));
    v["budget_usd"] = json!(k.budget_nanos.map(nanos_to_usd));
    v["budget_used_usd"] = json!(nanos_to_usd(budget_used));
    v["budget_reserved_usd"] = json!(nanos_to_usd(k.budget_reserved_nanos));
    v
}

impl<P: Ports> Gateway<P> {
    pub(super) fn key_answer(&self, key: Option<ApiKey>) -> Result<Response<P>, GatewayError> {
        let key = key.ok_or_else(|| RequestError::NotFound("API key".to_owned()))?;
        Ok(json_response(
            StatusCode::OK,
            &key_view(&key, self.now_ms()),
        ))
    }

    pub(super) async fn list_keys(&self) -> Result<Response<P>, GatewayError> {
        let now = self.now_ms();
        let keys = self.ports().store().list_keys().await?;
        let keys: Vec<Value> = self
            .ports()
            .accounts()
            .live(keys)
            .await
            .iter()
            .map(|k| key_view(k, now))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": keys}),
        ))
    }

    pub(super) async fn create_key(&self, body: &[u8]) -> Result<Response<P>, GatewayError> {
        let c: CreateKey = parse_body(body)?;
        check_name(&c.name)?;
        let quota = c.quota.unwrap_or(self.config().default_quota);
        check_limits((c.rpm, c.tpm), quota, &c.allowed_ips, &c.allowed_models)?;
        check_model_limits(&c.model_limits)?;
        check_tools(&c.allowed_tools)?;
        if let Some(m) = &c.default_model {
            crate::request::valid_model(m)?;
        }
        let mut random = [0u8; auth::key_random_len()];
        self.ports().fill_random(&mut random);
        let (plaintext, hash, prefix) = auth::new_key(random);
        let now = self.now_ms();
        let key = ApiKey {
            id: self.new_id("key_"),
            name: c.name.trim().to_owned(),
            prefix,
            hash: hash.into(),
            status: KeyStatus::Active,
            admin: c.admin,
            rpm: c.rpm,
            tpm: c.tpm,
            model_limits: c.model_limits,
            quota,
            quota_used: 0,
            quota_reserved: 0,
            quota_period: c.quota_period,
            quota_window: c.quota_period.window(now),
            budget_nanos: c.budget_usd.flatten(),
            budget_used_nanos: 0,
            budget_reserved_nanos: 0,
            budget_period: c.budget_period,
            budget_window: c.budget_period.window(now),
            allowed_models: c.allowed_models,
            allowed_ips: c.allowed_ips,
            allowed_tools: c.allowed_tools,
            default_model: c.default_model,
            expires_at: c.expires_at,
            created_at: now,
            updated_at: now,
            last_used_at: None,
        };
        let stored = self.ports().store().insert_key(NewKey { key }).await?;
        // Counters kept elsewhere that miss this write are rebuilt from the
        // record by the key's first reservation.
        if let Err(e) = self
            .ports()
            .accounts()
            .key_written(&stored, (true, true))
            .await
        {
            tracing::warn!(key_id = %stored.id, error = %e, "quota counters not written");
        }
        let mut out = key_view(&stored, now);
        // The only time the plaintext leaves the gateway.
        out["key"] = Value::String(plaintext);
        Ok(json_response(StatusCode::CREATED, &out))
    }

    pub(super) async fn patch_key(
        &self,
        id: &str,
        mut patch: KeyPatch,
    ) -> Result<Response<P>, GatewayError> {
        if let Some(name) = &patch.name {
            check_name(name)?;
        }
        check_limits(
            (patch.rpm.flatten(), patch.tpm.flatten()),
            patch.quota.flatten(),
            patch.allowed_ips.as_deref().unwrap_or(&[]),
            patch.allowed_models.as_deref().unwrap_or(&[]),
        )?;
        if let Some(l) = &patch.model_limits {
            check_model_limits(l)?;
        }
        check_tools(patch.allowed_tools.as_deref().unwrap_or(&[]))?;
        if patch.quota_used.is_some_and(|u| u < 0) {
            return Err(RequestError::invalid(
                "'quota_used' must be 0 or more.",
                Some("quota_used"),
            )
            .into());
        }
        if let Some(Some(m)) = &patch.default_model {
            crate::request::valid_model(m)?;
        }
        // A figure set by hand is the current window's.
        if patch.quota_used.is_some() || patch.budget_used_nanos.is_some() {
            let store = self.ports().store();
            let Some(k) = store.get_key(id).await? else {
                return self.key_answer(None);
            };
            let now = self.now_ms();
            if patch.quota_used.is_some() {
                let period = patch.quota_period.unwrap_or(k.quota_period);
                patch.quota_window = Some(period.window(now));
            }
            if patch.budget_used_nanos.is_some() {
                let period = patch.budget_period.unwrap_or(k.budget_period);
                patch.budget_window = Some(period.window(now));
            }
        }
        self.key_answer(self.write_key(id, patch).await?)
    }

    /// One key as the admin API shows it: its record, with its counters.
    pub(super) async fn read_key(&self, id: &str) -> Result<Option<ApiKey>, GatewayError> {
        match self.ports().store().get_key(id).await? {
            Some(k) => Ok(self.ports().accounts().live(vec![k]).await.pop()),
            None => Ok(None),
        }
    }

    /// Apply `patch` to the key's record, then to its counters (an error
    /// there is the admin's to see, rather than counters left stale).
    pub(super) async fn write_key(
        &self,
        id: &str,
        patch: KeyPatch,
    ) -> Result<Option<ApiKey>, GatewayError> {
        let (reset, counts) = (patch.resets(), patch.touches_counters());
        let key = self
            .ports()
            .store()
            .update_key(id, patch, self.now_ms())
            .await?;
        self.inner.records.keys_changed();
        if let Some(k) = key.as_ref().filter(|_| counts) {
            self.ports().accounts().key_written(k, reset).await?;
        }
        Ok(key)
    }
}
