//! The statements every SQLite-dialect store runs (rusqlite natively and
//! on EFS, D1 on Workers), over the schema in `migrations/`.
//!
//! Text and parameters only, no IO: each store binds [`SqlValue`]s its own
//! way and executes. Keeping one copy is what keeps the stores' counters
//! equally exact: reservation and rate limiting are single statements, and
//! settlement is two statements run as one transaction (a D1 batch).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backend::{BackendKind, ResponsesApi};
use crate::cost::Prices;
use crate::domain::{
    ApiKey, Ask, KeyPatch, KeyStatus, Lease, Model, ModelLimit, ModelPatch, Settlement,
    StoredResponse, UsageQuery,
};
use crate::error::StoreError;
use crate::period::Period;
use crate::secret::Secret;

/// A parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// INTEGER (booleans are 0/1).
    Int(i64),
    /// TEXT.
    Text(String),
}

impl From<Option<i64>> for SqlValue {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Self::Null, Self::Int)
    }
}

impl From<Option<String>> for SqlValue {
    fn from(v: Option<String>) -> Self {
        v.map_or(Self::Null, Self::Text)
    }
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

fn int(v: impl Into<i64>) -> SqlValue {
    SqlValue::Int(v.into())
}

fn list(l: &[String]) -> SqlValue {
    SqlValue::Text(serde_json::to_string(l).unwrap_or_else(|_| "[]".into()))
}

/// Columns of a key row, in [`KeyRow`] order.
pub const KEY_COLUMNS: &str = "id, name, prefix, key_hash, status, admin, rpm, quota, quota_used, quota_reserved, \
     allowed_models, allowed_ips, default_model, expires_at, created_at, updated_at, last_used_at, \
     quota_period, quota_window, budget_nanos, budget_used_nanos, budget_reserved_nanos, budget_period, budget_window, tpm, model_limits";

/// Columns of a model row, in [`ModelRow`] order.
pub const MODEL_COLUMNS: &str = "id, name, backend, base_url, fallback_urls, upstream_model, api_key, enabled, stream_usage, created_at, updated_at, responses_api, deployments, prices";

/// `SELECT` a key where `column = ?1`.
pub fn select_key(column: &str) -> String {
    format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE {column} = ?1")
}

/// All keys, newest first.
pub fn list_keys() -> String {
    format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id")
}

/// `SELECT` a model where `column = ?1`.
pub fn select_model(column: &str) -> String {
    format!("SELECT {MODEL_COLUMNS} FROM models WHERE {column} = ?1")
}

/// All models by name.
pub fn list_models() -> String {
    format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY name")
}

/// Insert a key: with [`insert_key_params`].
pub const INSERT_KEY: &str = "INSERT INTO api_keys (id, name, prefix, key_hash, status, admin, rpm, quota, \
     quota_used, quota_reserved, allowed_models, allowed_ips, default_model, expires_at, created_at, updated_at, \
     quota_period, quota_window, budget_nanos, budget_used_nanos, budget_reserved_nanos, budget_period, budget_window, tpm, model_limits)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 0, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15, ?16, 0, 0, ?17, ?18, ?19, ?20)";

/// Parameters of [`INSERT_KEY`].
pub fn insert_key_params(k: &ApiKey) -> Vec<SqlValue> {
    vec![
        text(&k.id),
        text(&k.name),
        text(&k.prefix),
        text(k.hash.expose()),
        text(k.status.as_str()),
        int(k.admin),
        k.rpm.map(i64::from).into(),
        k.quota.into(),
        list(&k.allowed_models),
        list(&k.allowed_ips),
        k.default_model.clone().into(),
        k.expires_at.into(),
        int(k.created_at),
        text(k.quota_period.as_str()),
        int(k.quota_window),
        k.budget_nanos.into(),
        text(k.budget_period.as_str()),
        int(k.budget_window),
        k.tpm.map(i64::from).into(),
        limits_text(&k.model_limits),
    ]
}

fn limits_text(l: &BTreeMap<String, ModelLimit>) -> SqlValue {
    if l.is_empty() {
        return SqlValue::Null;
    }
    serde_json::to_string(l).ok().into()
}

/// Insert a model: with [`insert_model_params`].
pub const INSERT_MODEL: &str =
    "INSERT INTO models (id, name, backend, base_url, fallback_urls, upstream_model, \
     api_key, enabled, stream_usage, created_at, updated_at, responses_api, deployments, prices)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13)";

/// Parameters of [`INSERT_MODEL`].
pub fn insert_model_params(m: &Model) -> Vec<SqlValue> {
    vec![
        text(&m.id),
        text(&m.name),
        text(m.backend.as_str()),
        text(&m.base_url),
        list(&m.fallback_urls),
        text(&m.upstream_model),
        m.api_key.as_ref().map(|k| k.expose().to_owned()).into(),
        int(m.enabled),
        int(m.stream_usage),
        int(m.created_at),
        m.responses_api.map(|r| r.as_str().to_owned()).into(),
        crate::deployment::to_stored(&m.deployments).into(),
        prices_text(m.prices.as_ref()),
    ]
}

fn prices_text(p: Option<&Prices>) -> SqlValue {
    p.and_then(|p| serde_json::to_string(p).ok()).into()
}

/// Delete a model by id.
pub const DELETE_MODEL: &str = "DELETE FROM models WHERE id = ?1";

/// Reserve tokens (?2 min to ?3 max) of key ?1's quota in its window ?4,
/// and nano-dollars (?5 min to ?6 max) of its budget in its window ?7, in
/// one statement (see [`crate::ports::KeyStore::reserve`]). Every SET
/// expression sees the old row, so the `last_*` columns record exactly
/// what this statement added and RETURNING hands them back; no row means
/// not enough was left. A counter of an earlier window counts as zero.
pub const RESERVE: &str = "UPDATE api_keys SET
        quota_used = CASE WHEN quota_window < ?4 THEN 0 ELSE quota_used END,
        quota_window = MAX(quota_window, ?4),
        quota_reserved = quota_reserved + CASE WHEN quota IS NULL THEN ?3 ELSE MIN(?3, quota
            - CASE WHEN quota_window < ?4 THEN 0 ELSE quota_used END - quota_reserved) END,
        last_reservation = CASE WHEN quota IS NULL THEN ?3 ELSE MIN(?3, quota
            - CASE WHEN quota_window < ?4 THEN 0 ELSE quota_used END - quota_reserved) END,
        budget_used_nanos = CASE WHEN budget_window < ?7 THEN 0 ELSE budget_used_nanos END,
        budget_window = MAX(budget_window, ?7),
        budget_reserved_nanos = budget_reserved_nanos + CASE WHEN budget_nanos IS NULL THEN ?6
            ELSE MIN(?6, budget_nanos - CASE WHEN budget_window < ?7 THEN 0 ELSE budget_used_nanos END
                - budget_reserved_nanos) END,
        last_money = CASE WHEN budget_nanos IS NULL THEN ?6
            ELSE MIN(?6, budget_nanos - CASE WHEN budget_window < ?7 THEN 0 ELSE budget_used_nanos END
                - budget_reserved_nanos) END
    WHERE id = ?1
      AND (quota IS NULL
        OR quota - CASE WHEN quota_window < ?4 THEN 0 ELSE quota_used END - quota_reserved >= ?2)
      AND (budget_nanos IS NULL
        OR budget_nanos - CASE WHEN budget_window < ?7 THEN 0 ELSE budget_used_nanos END
            - budget_reserved_nanos >= ?5)
    RETURNING last_reservation, last_money";

/// Parameters of [`RESERVE`].
pub fn reserve_params(key_id: &str, ask: &Ask) -> Vec<SqlValue> {
    vec![
        text(key_id),
        int(ask.tokens.0),
        int(ask.tokens.1),
        int(ask.quota_window),
        int(ask.money.0),
        int(ask.money.1),
        int(ask.budget_window),
    ]
}

/// Right after [`RESERVE`], in its transaction: the reservation's lease,
/// for the amounts RESERVE granted, if it granted any (`changes()`: rows
/// the previous statement changed). With [`lease_params`].
pub const LEASE: &str = "INSERT OR IGNORE INTO leases (request_id, key_id, model, backend, amount,
        created_at, expires_at, money)
    SELECT ?1, ?2, ?3, ?4, last_reservation, ?5, ?6, last_money FROM api_keys WHERE id = ?2 AND changes() = 1";

/// Parameters of [`LEASE`].
pub fn lease_params(l: &Lease) -> Vec<SqlValue> {
    vec![
        text(&l.request_id),
        text(&l.key_id),
        text(&l.model),
        text(&l.backend),
        int(l.created_at),
        int(l.expires_at),
    ]
}

/// Settlement, third statement: the lease ends (?1: the request id).
pub const END_LEASE: &str = "DELETE FROM leases WHERE request_id = ?1";

/// Outstanding leases, oldest first.
pub const LEASES: &str =
    "SELECT request_id, key_id, model, backend, amount, created_at, expires_at, money
    FROM leases ORDER BY created_at";

/// Leases expired by ?1 (epoch ms), oldest first.
pub const EXPIRED_LEASES: &str =
    "SELECT request_id, key_id, model, backend, amount, created_at, expires_at, money
    FROM leases WHERE expires_at <= ?1 ORDER BY expires_at";

/// Settlement, first statement: release the reservations and charge the
/// usage (tokens ?3 in window ?6, nano-dollars ?8 in window ?9: to a
/// counter still in that window, or starting a later one; a counter
/// already in a later window keeps its count), unless this request was
/// settled before (idempotent).
pub const CHARGE: &str = "UPDATE api_keys SET
        quota_reserved = MAX(quota_reserved - ?2, 0),
        quota_used = CASE WHEN quota_window = ?6 THEN quota_used + ?3
            WHEN quota_window < ?6 THEN ?3 ELSE quota_used END,
        quota_window = MAX(quota_window, ?6),
        budget_reserved_nanos = MAX(budget_reserved_nanos - ?7, 0),
        budget_used_nanos = CASE WHEN budget_window = ?9 THEN budget_used_nanos + ?8
            WHEN budget_window < ?9 THEN ?8 ELSE budget_used_nanos END,
        budget_window = MAX(budget_window, ?9),
        last_used_at = ?4
    WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM usage_records WHERE request_id = ?5)";

/// Settlement, second statement: the usage record (once per request id).
pub const RECORD: &str = "INSERT OR IGNORE INTO usage_records (request_id, key_id, model, backend,
        prompt_tokens, completion_tokens, status, usage_reported, stream, error, latency_ms, created_at, endpoint,
        deployment, cached_tokens, cost_nanos)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// Parameters of [`CHARGE`] and [`RECORD`], to run in that order in one
/// transaction.
pub fn settle_params(s: &Settlement) -> (Vec<SqlValue>, Vec<SqlValue>) {
    let u = &s.usage;
    let charge = vec![
        text(&s.key_id),
        int(s.reserved),
        int(s.charge()),
        int(u.created_at),
        text(&u.request_id),
        int(s.quota_window),
        int(s.reserved_money),
        int(s.charge_money()),
        int(s.budget_window),
    ];
    let record = vec![
        text(&u.request_id),
        text(&u.key_id),
        text(&u.model),
        text(&u.backend),
        int(u.prompt_tokens),
        int(u.completion_tokens),
        int(u.status),
        int(u.usage_reported),
        int(u.stream),
        u.error.clone().into(),
        int(u.latency_ms),
        int(u.created_at),
        u.endpoint.clone().into(),
        u.deployment.clone().into(),
        int(u.cached_tokens),
        u.cost_nanos.into(),
    ];
    (charge, record)
}

/// Usage per UTC day, key, model, endpoint and deployment: with
/// [`usage_params`].
pub const USAGE_BY_DAY: &str = "SELECT strftime('%Y-%m-%d', created_at / 1000, 'unixepoch') AS day, key_id, model,
        endpoint, deployment, COUNT(*) AS requests, SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,
        SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END) AS errors,
        SUM(cached_tokens) AS cached_tokens, SUM(COALESCE(cost_nanos, 0)) AS cost_nanos
    FROM usage_records
    WHERE created_at >= ?1 AND created_at < ?2
      AND (?3 IS NULL OR key_id = ?3) AND (?4 IS NULL OR model = ?4)
    GROUP BY day, key_id, model, endpoint, deployment
    ORDER BY day, key_id, model, endpoint, deployment";

/// Parameters of [`USAGE_BY_DAY`].
pub fn usage_params(q: &UsageQuery) -> Vec<SqlValue> {
    vec![
        int(q.from_ms),
        int(q.to_ms),
        q.key_id.clone().into(),
        q.model.clone().into(),
    ]
}

/// Keep a response: with [`response_params`].
pub const PUT_RESPONSE: &str = "INSERT OR REPLACE INTO responses (id, key_id, model, previous_response_id, \
     input, response, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Parameters of [`PUT_RESPONSE`].
pub fn response_params(r: &StoredResponse) -> Vec<SqlValue> {
    vec![
        text(&r.id),
        text(&r.key_id),
        text(&r.model),
        r.previous_response_id.clone().into(),
        text(&r.input),
        text(&r.response),
        int(r.created_at),
        int(r.expires_at),
    ]
}

/// The response ?1, unless expired by ?2.
pub const GET_RESPONSE: &str = "SELECT id, key_id, model, previous_response_id, input, response, created_at, \
     expires_at FROM responses WHERE id = ?1 AND expires_at > ?2";

/// Key ?1's responses not expired by ?2, newest first, at most ?3.
pub const LIST_RESPONSES: &str = "SELECT id, key_id, model, previous_response_id, created_at, expires_at \
     FROM responses WHERE key_id = ?1 AND expires_at > ?2 ORDER BY created_at DESC, id LIMIT ?3";

/// Parameters of [`LIST_RESPONSES`].
pub fn list_responses_params(key_id: &str, now_ms: i64, limit: u32) -> Vec<SqlValue> {
    vec![text(key_id), int(now_ms), int(i64::from(limit))]
}

/// Parameters of [`GET_RESPONSE`].
pub fn get_response_params(id: &str, now_ms: i64) -> Vec<SqlValue> {
    vec![text(id), int(now_ms)]
}

/// Parameters of [`PURGE_RESPONSES`].
pub fn purge_responses_params(now_ms: i64, limit: u32) -> Vec<SqlValue> {
    vec![int(now_ms), int(i64::from(limit))]
}

/// Delete the response ?1.
pub const DELETE_RESPONSE: &str = "DELETE FROM responses WHERE id = ?1";

/// Delete up to ?2 responses expired by ?1, found by the expiry index.
pub const PURGE_RESPONSES: &str = "DELETE FROM responses WHERE id IN \
     (SELECT id FROM responses WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)";

/// One GCRA step for subject ?1 at ?2 (now, µs) with ?3 (the increment:
/// interval times cost, µs) and ?4 (window, µs), atomically: RETURNING the
/// new TAT when allowed, no row when refused (see [`crate::limiter`]). A
/// first step is held to the window too (a cost over the whole allowance).
pub const RATE_STEP: &str =
    "INSERT INTO rate_limits (key_id, tat) SELECT ?1, ?2 + ?3 WHERE ?3 <= ?4
    ON CONFLICT (key_id) DO UPDATE SET tat = MAX(tat, ?2) + ?3
        WHERE MAX(tat, ?2) + ?3 - ?2 <= ?4
    RETURNING tat";

/// The stored TAT of key ?1 (to explain a refusal).
pub const RATE_TAT: &str = "SELECT tat FROM rate_limits WHERE key_id = ?1";

/// Move key ?1's TAT back by ?2 µs (tokens given back).
pub const RATE_REFUND: &str = "UPDATE rate_limits SET tat = tat - ?2 WHERE key_id = ?1";

/// The columns a key patch changes, with their new values (not
/// `updated_at`). Shared by the SQL stores and DynamoDB.
pub fn key_changes(p: KeyPatch) -> Vec<(&'static str, SqlValue)> {
    let mut c = Changes::default();
    c.set("name", p.name.map(SqlValue::Text));
    c.set("status", p.status.map(|s| text(s.as_str())));
    c.set("rpm", p.rpm.map(|r| r.map(i64::from).into()));
    c.set("tpm", p.tpm.map(|r| r.map(i64::from).into()));
    c.set("model_limits", p.model_limits.as_ref().map(limits_text));
    c.set("quota", p.quota.map(SqlValue::from));
    c.set("quota_used", p.quota_used.map(SqlValue::Int));
    // A new period starts a new window.
    c.set("quota_period", p.quota_period.map(|q| text(q.as_str())));
    c.set(
        "quota_window",
        p.quota_window.or(p.quota_period.map(|_| 0)).map(int),
    );
    c.set("budget_nanos", p.budget_nanos.map(SqlValue::from));
    c.set("budget_used_nanos", p.budget_used_nanos.map(SqlValue::Int));
    c.set("budget_period", p.budget_period.map(|q| text(q.as_str())));
    c.set(
        "budget_window",
        p.budget_window.or(p.budget_period.map(|_| 0)).map(int),
    );
    c.set("allowed_models", p.allowed_models.as_deref().map(list));
    c.set("allowed_ips", p.allowed_ips.as_deref().map(list));
    c.set("default_model", p.default_model.map(SqlValue::from));
    c.set("expires_at", p.expires_at.map(SqlValue::from));
    c.0
}

/// The columns a model patch changes, with their new values (not
/// `updated_at`).
pub fn model_changes(p: ModelPatch) -> Vec<(&'static str, SqlValue)> {
    let mut c = Changes::default();
    c.set("name", p.name.map(SqlValue::Text));
    c.set("backend", p.backend.map(|b| text(b.as_str())));
    c.set(
        "base_url",
        p.base_url.map(|b| text(b.trim_end_matches('/'))),
    );
    c.set("fallback_urls", p.fallback_urls.as_deref().map(list));
    c.set("upstream_model", p.upstream_model.map(SqlValue::Text));
    c.set(
        "api_key",
        p.api_key.map(|k| {
            k.map(|k| k.expose().to_owned())
                .filter(|k| !k.is_empty())
                .into()
        }),
    );
    c.set("enabled", p.enabled.map(int));
    c.set("stream_usage", p.stream_usage.map(int));
    c.set(
        "responses_api",
        p.responses_api
            .map(|r| r.map(|r| r.as_str().to_owned()).into()),
    );
    c.set(
        "deployments",
        p.deployments
            .map(|d| crate::deployment::to_stored(&d).into()),
    );
    c.set("prices", p.prices.map(|p| prices_text(p.as_ref())));
    c.0
}

/// `UPDATE api_keys SET ... WHERE id = ?` for a patch; the id is the last
/// parameter.
pub fn key_patch(id: &str, p: KeyPatch, now_ms: i64) -> (String, Vec<SqlValue>) {
    update("api_keys", id, key_changes(p), now_ms)
}

/// `UPDATE models SET ... WHERE id = ?` for a patch.
pub fn model_patch(id: &str, p: ModelPatch, now_ms: i64) -> (String, Vec<SqlValue>) {
    update("models", id, model_changes(p), now_ms)
}

#[derive(Default)]
struct Changes(Vec<(&'static str, SqlValue)>);

impl Changes {
    fn set(&mut self, column: &'static str, value: Option<SqlValue>) {
        if let Some(v) = value {
            self.0.push((column, v));
        }
    }
}

fn update(
    table: &str,
    id: &str,
    changes: Vec<(&'static str, SqlValue)>,
    now_ms: i64,
) -> (String, Vec<SqlValue>) {
    let mut sets = vec!["updated_at = ?".to_owned()];
    let mut values = vec![int(now_ms)];
    for (column, value) in changes {
        sets.push(format!("{column} = ?"));
        values.push(value);
    }
    values.push(text(id));
    (
        format!("UPDATE {table} SET {} WHERE id = ?", sets.join(", ")),
        values,
    )
}

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
    /// Explicit deployments, as [`crate::deployment::to_stored`] writes them.
    #[serde(default)]
    pub deployments: Option<Secret>,
    /// Prices, as JSON.
    #[serde(default)]
    pub prices: Option<String>,
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
            deployments: crate::deployment::from_stored(
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
            deployments: crate::deployment::to_stored(&m.deployments).map(Secret::from),
            prices: m.prices.and_then(|p| serde_json::to_string(&p).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "UPDATE api_keys SET updated_at = ?, name = ?, rpm = ? WHERE id = ?"
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
        };
        let key = row.clone().into_key().unwrap();
        assert_eq!(key.quota_period, Period::Monthly);
        assert!(key.admin && key.allowed_models == vec!["m"]);
        assert_eq!(KeyRow::from_key(&key), row);
    }
}
