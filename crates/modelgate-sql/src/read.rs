//! Result rows read by position, whatever the driver: each store wraps its
//! row type in [`Columns`], and the statements' column orders live here
//! once.

use modelgate_core::domain::{Lease, ResponseSummary, StoredResponse, UsageRow};

use crate::{KeyRow, ModelRow, RecordRow};

/// A result row's columns, by position.
pub trait Columns {
    /// The driver's error.
    type Error;
    /// An integer.
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    /// An integer or NULL.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    /// Text.
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    /// Text or NULL.
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
}

impl KeyRow {
    /// A row of [`crate::KEY_COLUMNS`].
    pub fn read<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(Self {
            id: r.text(0)?,
            name: r.text(1)?,
            prefix: r.text(2)?,
            key_hash: r.text(3)?.into(),
            status: r.text(4)?,
            admin: r.int(5)?,
            rpm: r.opt_int(6)?,
            quota: r.opt_int(7)?,
            quota_used: r.int(8)?,
            quota_reserved: r.int(9)?,
            allowed_models: r.text(10)?,
            allowed_ips: r.text(11)?,
            default_model: r.opt_text(12)?,
            expires_at: r.opt_int(13)?,
            created_at: r.int(14)?,
            updated_at: r.int(15)?,
            last_used_at: r.opt_int(16)?,
            quota_period: r.opt_text(17)?,
            quota_window: r.int(18)?,
            budget_nanos: r.opt_int(19)?,
            budget_used_nanos: r.int(20)?,
            budget_reserved_nanos: r.int(21)?,
            budget_period: r.opt_text(22)?,
            budget_window: r.int(23)?,
            tpm: r.opt_int(24)?,
            model_limits: r.opt_text(25)?,
            allowed_tools: r.opt_text(26)?,
        })
    }
}

impl ModelRow {
    /// A row of [`crate::MODEL_COLUMNS`].
    pub fn read<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(Self {
            id: r.text(0)?,
            name: r.text(1)?,
            backend: r.text(2)?,
            base_url: r.text(3)?,
            fallback_urls: r.text(4)?,
            upstream_model: r.text(5)?,
            api_key: r.opt_text(6)?.map(Into::into),
            enabled: r.int(7)?,
            stream_usage: r.int(8)?,
            created_at: r.int(9)?,
            updated_at: r.int(10)?,
            responses_api: r.opt_text(11)?,
            deployments: r.opt_text(12)?.map(Into::into),
            prices: r.opt_text(13)?,
            messages_api: r.opt_text(14)?,
        })
    }
}

/// A row of [`crate::USAGE_BY_DAY`].
pub fn usage_row<R: Columns>(r: &R) -> Result<UsageRow, R::Error> {
    Ok(UsageRow {
        day: r.text(0)?,
        key_id: r.text(1)?,
        model: r.text(2)?,
        endpoint: r.opt_text(3)?,
        deployment: r.opt_text(4)?,
        requests: r.int(5)?,
        prompt_tokens: r.int(6)?,
        completion_tokens: r.int(7)?,
        errors: r.int(8)?,
        cached_tokens: r.int(9)?,
        cost_nanos: r.int(10)?,
    })
}

impl RecordRow {
    /// A row of [`crate::USAGE_RECORDS`].
    pub fn read<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(Self {
            request_id: r.text(0)?,
            key_id: r.text(1)?,
            model: r.text(2)?,
            backend: r.text(3)?,
            prompt_tokens: r.int(4)?,
            completion_tokens: r.int(5)?,
            cached_tokens: r.int(6)?,
            cost_nanos: r.opt_int(7)?,
            status: r.int(8)?,
            usage_reported: r.int(9)?,
            stream: r.int(10)?,
            endpoint: r.opt_text(11)?,
            deployment: r.opt_text(12)?,
            error: r.opt_text(13)?,
            latency_ms: r.int(14)?,
            created_at: r.int(15)?,
            arguments: r.opt_text(16)?,
        })
    }
}

/// A row of [`crate::LEASES`].
pub fn lease_row<R: Columns>(r: &R) -> Result<Lease, R::Error> {
    Ok(Lease {
        request_id: r.text(0)?,
        key_id: r.text(1)?,
        model: r.text(2)?,
        backend: r.text(3)?,
        amount: r.int(4)?,
        created_at: r.int(5)?,
        expires_at: r.int(6)?,
        money: r.int(7)?,
    })
}

/// A row of [`crate::GET_RESPONSE`].
pub fn response_row<R: Columns>(r: &R) -> Result<StoredResponse, R::Error> {
    Ok(StoredResponse {
        id: r.text(0)?,
        key_id: r.text(1)?,
        model: r.text(2)?,
        previous_response_id: r.opt_text(3)?,
        input: r.text(4)?,
        response: r.text(5)?,
        created_at: r.int(6)?,
        expires_at: r.int(7)?,
    })
}

/// A row of [`crate::LIST_RESPONSES`].
pub fn summary_row<R: Columns>(r: &R) -> Result<ResponseSummary, R::Error> {
    Ok(ResponseSummary {
        id: r.text(0)?,
        key_id: r.text(1)?,
        model: r.text(2)?,
        previous_response_id: r.opt_text(3)?,
        created_at: r.int(4)?,
        expires_at: r.int(5)?,
    })
}
