//! The statements in SQLite's dialect (SQLite and D1), with their
//! parameters.

use std::collections::BTreeMap;

use modelgate_core::cost::Prices;
use modelgate_core::domain::{
    ApiKey, Ask, Lease, Model, ModelLimit, RecordQuery, Settlement, StoredResponse, UsageQuery,
};
use modelgate_core::limiter;

use crate::{SqlValue, int, list, text};

/// Columns of a key row, in [`KeyRow`] order.
pub const KEY_COLUMNS: &str = "id, name, prefix, key_hash, status, admin, rpm, quota, quota_used, quota_reserved, \
     allowed_models, allowed_ips, default_model, expires_at, created_at, updated_at, last_used_at, \
     quota_period, quota_window, budget_nanos, budget_used_nanos, budget_reserved_nanos, budget_period, budget_window, tpm, model_limits, \
     allowed_tools";

/// Columns of a model row, in [`ModelRow`] order.
pub const MODEL_COLUMNS: &str = "id, name, backend, base_url, fallback_urls, upstream_model, api_key, enabled, stream_usage, created_at, updated_at, responses_api, deployments, prices, messages_api";

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
     quota_period, quota_window, budget_nanos, budget_used_nanos, budget_reserved_nanos, budget_period, budget_window, tpm, model_limits, allowed_tools)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 0, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15, ?16, 0, 0, ?17, ?18, ?19, ?20, ?21)";

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
        list(&k.allowed_tools),
    ]
}

pub(crate) fn limits_text(l: &BTreeMap<String, ModelLimit>) -> SqlValue {
    if l.is_empty() {
        return SqlValue::Null;
    }
    serde_json::to_string(l).ok().into()
}

/// Insert a model: with [`insert_model_params`].
pub const INSERT_MODEL: &str =
    "INSERT INTO models (id, name, backend, base_url, fallback_urls, upstream_model, \
     api_key, enabled, stream_usage, created_at, updated_at, responses_api, deployments, prices, messages_api)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14)";

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
        modelgate_core::deployment::to_stored(&m.deployments).into(),
        prices_text(m.prices.as_ref()),
        m.messages_api.map(|r| r.as_str().to_owned()).into(),
    ]
}

pub(crate) fn prices_text(p: Option<&Prices>) -> SqlValue {
    p.and_then(|p| serde_json::to_string(p).ok()).into()
}

/// Delete a model by id.
pub const DELETE_MODEL: &str = "DELETE FROM models WHERE id = ?1";

/// [`RESERVE`] with `$gate` (more conditions) at the end of its WHERE.
macro_rules! reserve {
    ($gate:literal) => {
        reserve!($gate, "\n    RETURNING last_reservation, last_money")
    };
    ($gate:literal, $returning:literal) => {
        concat!(
            "UPDATE api_keys SET
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
            - budget_reserved_nanos >= ?5)",
            $gate,
            $returning
        )
    };
}

/// Reserve tokens (?2 min to ?3 max) of key ?1's quota in its window ?4,
/// and nano-dollars (?5 min to ?6 max) of its budget in its window ?7, in
/// one statement (see `Accounting::reserve`). Every SET
/// expression sees the old row, so the `last_*` columns record exactly
/// what this statement added and RETURNING hands them back; no row means
/// not enough was left. A counter of an earlier window counts as zero.
pub const RESERVE: &str = reserve!("");

/// [`RESERVE`] without its RETURNING, for a store that reads the grant
/// with [`GRANTED`] inside the same transaction: SQLite runs an UPDATE's
/// RETURNING through a temporary table, which costs more than reading the
/// one row back by its primary key.
pub const RESERVE_QUIET: &str = reserve!("", "");

/// After [`RESERVE_QUIET`] changed the row of key ?1, in its transaction:
/// what it granted (tokens, nano-dollars).
pub const GRANTED: &str = "SELECT last_reservation, last_money FROM api_keys WHERE id = ?1";

/// [`RESERVE`] only if the statement before it in its transaction changed
/// a row (`changes()`): after [`RATE_STEP`], a reservation for a request
/// its rate allowed, so that a store holding both makes them one round
/// trip (a D1 batch). A refused step leaves the key as it was.
pub const RESERVE_IF_STEPPED: &str = reserve!("\n      AND changes() = 1");

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
        deployment, cached_tokens, cost_nanos, arguments)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

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
        u.arguments.clone().into(),
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

/// Usage records, newest first (read by [`crate::RecordRow::read`]): with
/// [`records_params`].
pub const USAGE_RECORDS: &str = "SELECT request_id, key_id, model, backend, prompt_tokens, completion_tokens,
        cached_tokens, cost_nanos, status, usage_reported, stream, endpoint, deployment, error, latency_ms,
        created_at, arguments
    FROM usage_records
    WHERE created_at >= ?1 AND created_at < ?2
      AND (?3 IS NULL OR key_id = ?3) AND (?4 IS NULL OR model = ?4) AND (?5 IS NULL OR endpoint = ?5)
    ORDER BY created_at DESC, request_id DESC
    LIMIT ?6";

/// Parameters of [`USAGE_RECORDS`].
pub fn records_params(q: &RecordQuery) -> Vec<SqlValue> {
    let mut params = usage_params(&q.usage);
    params.push(q.endpoint.clone().into());
    params.push(int(q.limit));
    params
}

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
/// new TAT when allowed, no row when refused (see `modelgate_core::limiter`). A
/// first step is held to the window too (a cost over the whole allowance).
pub const RATE_STEP: &str =
    "INSERT INTO rate_limits (key_id, tat) SELECT ?1, ?2 + ?3 WHERE ?3 <= ?4
    ON CONFLICT (key_id) DO UPDATE SET tat = MAX(tat, ?2) + ?3
        WHERE MAX(tat, ?2) + ?3 - ?2 <= ?4
    RETURNING tat";

/// Parameters of [`RATE_STEP`] for `cost` units of `subject`'s
/// `per_minute` allowance at `now_ms` (the first is [`RATE_TAT`]'s too),
/// and the statement's now in µs.
pub fn rate_step_params(
    subject: &str,
    per_minute: u32,
    cost: i64,
    now_ms: i64,
) -> (Vec<SqlValue>, i64) {
    let now_us = now_ms.saturating_mul(1000);
    let (interval, window) = limiter::gcra_params(per_minute);
    let args = vec![
        text(subject),
        int(now_us),
        int(interval.saturating_mul(cost.max(0))),
        int(window),
    ];
    (args, now_us)
}

/// Parameters of [`RATE_REFUND`]: `units` given back.
pub fn rate_refund_params(subject: &str, per_minute: u32, units: i64) -> Vec<SqlValue> {
    vec![text(subject), int(limiter::refund_us(per_minute, units))]
}

/// The stored TAT of key ?1 (to explain a refusal).
pub const RATE_TAT: &str = "SELECT tat FROM rate_limits WHERE key_id = ?1";

/// Move key ?1's TAT back by ?2 µs (tokens given back).
pub const RATE_REFUND: &str = "UPDATE rate_limits SET tat = tat - ?2 WHERE key_id = ?1";
