//! What an admin patch does to a record, for stores that write whole
//! records (the SQL stores translate a patch into columns instead, in
//! `modelgate-sql`; the store conformance suite holds both to one
//! behaviour).

use crate::domain::{ApiKey, KeyPatch, Model, ModelPatch};

/// Set `field` to `value`, if there is one.
pub(crate) fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

impl KeyPatch {
    /// `key` as the patch leaves it at `now_ms`. A new period starts a new
    /// window (unless the patch names the window).
    pub fn apply(self, key: &mut ApiKey, now_ms: i64) {
        let quota_window = self.quota_window.or(self.quota_period.map(|_| 0));
        let budget_window = self.budget_window.or(self.budget_period.map(|_| 0));
        set(&mut key.name, self.name);
        set(&mut key.status, self.status);
        set(&mut key.rpm, self.rpm);
        set(&mut key.tpm, self.tpm);
        set(&mut key.model_limits, self.model_limits);
        set(&mut key.quota, self.quota);
        set(&mut key.quota_used, self.quota_used);
        set(&mut key.quota_period, self.quota_period);
        set(&mut key.quota_window, quota_window);
        set(&mut key.budget_nanos, self.budget_nanos);
        set(&mut key.budget_used_nanos, self.budget_used_nanos);
        set(&mut key.budget_period, self.budget_period);
        set(&mut key.budget_window, budget_window);
        set(&mut key.allowed_models, self.allowed_models);
        set(&mut key.allowed_ips, self.allowed_ips);
        set(&mut key.allowed_tools, self.allowed_tools);
        set(&mut key.default_model, self.default_model);
        set(&mut key.expires_at, self.expires_at);
        key.updated_at = now_ms;
    }
}

impl ModelPatch {
    /// `model` as the patch leaves it at `now_ms`: a base URL without its
    /// trailing `/`, an empty upstream key none.
    pub fn apply(self, model: &mut Model, now_ms: i64) {
        let base_url = self.base_url.map(|b| b.trim_end_matches('/').to_owned());
        let api_key = self.api_key.map(|k| k.filter(|k| !k.expose().is_empty()));
        set(&mut model.name, self.name);
        set(&mut model.backend, self.backend);
        set(&mut model.base_url, base_url);
        set(&mut model.fallback_urls, self.fallback_urls);
        set(&mut model.upstream_model, self.upstream_model);
        set(&mut model.api_key, api_key);
        set(&mut model.enabled, self.enabled);
        set(&mut model.stream_usage, self.stream_usage);
        set(&mut model.responses_api, self.responses_api);
        set(&mut model.messages_api, self.messages_api);
        set(&mut model.deployments, self.deployments);
        set(&mut model.prices, self.prices);
        model.updated_at = now_ms;
    }
}
