//! Exact per-minute limits shared by every replica: one GCRA step is one
//! statement (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`), which
//! PostgreSQL runs atomically per subject.

use modelgate_core::error::StoreError;
use modelgate_core::limiter;
use modelgate_core::ports::{RateDecision, RateLimiter};
use modelgate_sql::postgres::{self as pg, numbered};
use modelgate_sql::{self as sql, SqlValue};

use crate::{PgStore, pg_err};

impl PgStore {
    async fn tat(&self, sql: &str, args: &[SqlValue]) -> Result<Option<i64>, StoreError> {
        let rows = self.query(sql, args).await?;
        rows.first()
            .map(|r| r.try_get(0).map_err(pg_err))
            .transpose()
    }
}

impl RateLimiter for PgStore {
    async fn acquire(
        &self,
        subject: &str,
        per_minute: u32,
        cost: i64,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        let (args, now_us) = sql::rate_step_params(subject, per_minute, cost, now_ms);
        let stepped = self.tat(pg::RATE_STEP, &args).await?;
        let stored = match stepped {
            Some(_) => None,
            None => self.tat(&numbered(sql::RATE_TAT), &args[..1]).await?,
        };
        Ok(limiter::store_decision(
            stepped, stored, now_us, per_minute, cost,
        ))
    }

    async fn refund(
        &self,
        subject: &str,
        per_minute: u32,
        units: i64,
        _now_ms: i64,
    ) -> Result<(), StoreError> {
        let args = sql::rate_refund_params(subject, per_minute, units);
        self.execute(&numbered(sql::RATE_REFUND), &args)
            .await
            .map(drop)
    }
}
