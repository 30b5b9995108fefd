//! Leases: no reservation outlives its request, even when the process
//! serving it dies (`kill -9`, a Lambda timeout, a Worker cancelled with
//! its client).
//!
//! Every reservation is written with a lease that ends `timeout_ms` (the
//! longest a request may run) plus `lease_grace_ms` after admission; the
//! settlement ends it. Any instance that finds a lease past its end settles
//! that request as abandoned: a `lease_expired` record, nothing charged,
//! the quota released. Settling is idempotent per request id, so a late
//! real settlement and an expiry never both count. Instances look at most
//! every [`SWEEP_EVERY_MS`], after an admission, on detached work; the
//! native server also looks when it starts. Admins list the leases and can
//! release one at once.

use super::Gateway;
use crate::domain::{Lease, Settlement, UsageRecord};
use crate::error::GatewayError;
use crate::ports::{Accounting, Ports};

/// How often one instance looks for expired leases.
pub(super) const SWEEP_EVERY_MS: i64 = 30_000;

/// The settlement of a lease's request that will never settle itself.
fn abandoned(lease: &Lease, error: &str, now_ms: i64) -> Settlement {
    Settlement {
        key_id: lease.key_id.clone(),
        reserved: lease.amount,
        reserved_money: lease.money,
        // Nothing is charged, so no window is named.
        quota_window: 0,
        budget_window: 0,
        usage: UsageRecord {
            request_id: lease.request_id.clone(),
            key_id: lease.key_id.clone(),
            model: lease.model.clone(),
            backend: lease.backend.clone(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cost_nanos: None,
            status: 0,
            usage_reported: false,
            endpoint: None,
            deployment: None,
            stream: false,
            error: Some(error.to_owned()),
            latency_ms: now_ms - lease.created_at,
            created_at: now_ms,
            arguments: None,
        },
    }
}

impl<P: Ports> Gateway<P> {
    /// When a lease taken at `now_ms` ends.
    pub(super) fn lease_expiry(&self, now_ms: i64) -> i64 {
        let c = self.config();
        let ms = c.timeout_ms.saturating_add(c.lease_grace_ms);
        now_ms.saturating_add_unsigned(ms)
    }

    /// Settle every request whose lease has expired; how many.
    pub async fn expire_leases(&self) -> Result<usize, GatewayError> {
        let now = self.now_ms();
        let expired = self.ports().accounts().leases(Some(now)).await?;
        for lease in &expired {
            tracing::warn!(request_id = %lease.request_id, key_id = %lease.key_id,
                held = lease.amount, "lease expired: settling an abandoned request");
            self.settle(abandoned(lease, "lease_expired", now)).await;
        }
        Ok(expired.len())
    }

    /// Look for expired leases on detached work, if this instance has not
    /// looked for [`SWEEP_EVERY_MS`].
    pub(super) fn sweep_leases_if_due(&self) {
        if !super::claim_due(&self.inner.last_sweep_ms, self.now_ms(), SWEEP_EVERY_MS) {
            return;
        }
        let gateway = self.clone();
        self.ports().spawn(async move {
            if let Err(e) = gateway.expire_leases().await {
                tracing::warn!(error = %e, "looking for expired leases failed");
            }
        });
    }

    /// `GET /admin/api/reservations`: the outstanding leases.
    pub(super) async fn admin_leases(&self) -> Result<Vec<Lease>, GatewayError> {
        Ok(self.ports().accounts().leases(None).await?)
    }

    /// `DELETE /admin/api/reservations/{request_id}`: settle that request
    /// now as released by an admin (nothing charged; if it is in fact still
    /// running, its own settlement later finds it settled and counts
    /// nothing). `false` when there is no such lease.
    pub(super) async fn admin_release(&self, request_id: &str) -> Result<bool, GatewayError> {
        let leases = self.ports().accounts().leases(None).await?;
        let Some(lease) = leases.iter().find(|l| l.request_id == request_id) else {
            return Ok(false);
        };
        self.settle(abandoned(lease, "released_by_admin", self.now_ms()))
            .await;
        Ok(true)
    }
}
