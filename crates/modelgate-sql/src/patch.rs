//! `UPDATE` statements for admin patches.

use modelgate_core::domain::{KeyPatch, ModelPatch};

use crate::statements::{limits_text, prices_text};
use crate::{SqlValue, int, list, text};

/// The columns a key patch changes, with their new values (not
/// `updated_at`). Shared by the SQL stores and DynamoDB.
fn key_changes(p: KeyPatch) -> Vec<(&'static str, SqlValue)> {
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
    c.set("allowed_tools", p.allowed_tools.as_deref().map(list));
    c.set("default_model", p.default_model.map(SqlValue::from));
    c.set("expires_at", p.expires_at.map(SqlValue::from));
    c.0
}

/// The columns a model patch changes, with their new values (not
/// `updated_at`).
fn model_changes(p: ModelPatch) -> Vec<(&'static str, SqlValue)> {
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
        "messages_api",
        p.messages_api
            .map(|r| r.map(|r| r.as_str().to_owned()).into()),
    );
    c.set(
        "deployments",
        p.deployments
            .map(|d| modelgate_core::deployment::to_stored(&d).into()),
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
    let mut sets = vec!["updated_at = ?1".to_owned()];
    let mut values = vec![int(now_ms)];
    for (column, value) in changes {
        values.push(value);
        sets.push(format!("{column} = ?{}", values.len()));
    }
    values.push(text(id));
    (
        format!(
            "UPDATE {table} SET {} WHERE id = ?{}",
            sets.join(", "),
            values.len()
        ),
        values,
    )
}
