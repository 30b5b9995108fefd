//! Exact per-minute limits shared by every replica: one GCRA step is one
//! statement (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`), which
//! PostgreSQL runs atomically per subject; a key's request step can carry
//! its quota reservation in the same statement.

use modelgate_core::domain::{Ask, Grant, Lease};
use modelgate_core::error::StoreError;
use modelgate_core::limiter;
use modelgate_core::ports::{RateDecision, RateLimiter, StepAndReserve};
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

/// One request's RPM step and, if it is allowed, the reservation of its
/// ask with the lease: one statement ([`pg::STEP_AND_RESERVE`]), so one
/// round trip and one commit.
impl StepAndReserve for PgStore {
    async fn step_and_reserve(
        &self,
        subject: &str,
        per_minute: u32,
        now_ms: i64,
        lease: &Lease,
        ask: &Ask,
    ) -> Result<(RateDecision, Option<Grant>), StoreError> {
        let (rate, now_us) = sql::rate_step_params(subject, per_minute, 1, now_ms);
        let mut args = pg::lease_reserve_params(lease, ask);
        args.extend(rate.iter().cloned());
        let rows = self.query(pg::STEP_AND_RESERVE, &args).await?;
        let (stepped, grant) = match rows.first() {
            None => (None, None),
            Some(r) => {
                let tokens: Option<i64> = r.try_get(1).map_err(pg_err)?;
                let money: Option<i64> = r.try_get(2).map_err(pg_err)?;
                let grant = tokens
                    .zip(money)
                    .map(|(tokens, money)| Grant { tokens, money });
                (Some(r.try_get(0).map_err(pg_err)?), grant)
            }
        };
        // A refusal's figures come from the TAT as it is stored now.
        let stored = match stepped {
            Some(_) => None,
            None => self.tat(&numbered(sql::RATE_TAT), &rate[..1]).await?,
        };
        let decision = limiter::store_decision(stepped, stored, now_us, per_minute, 1);
        Ok((decision, grant))
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
