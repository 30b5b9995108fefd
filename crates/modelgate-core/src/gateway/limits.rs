//! A request's per-minute limits: its key's requests and tokens per
//! minute, and the key's own limits on the model asked for (so that a key
//! cannot spend everything on its most expensive model). Each is a GCRA
//! subject of the limiter; a request passes all of them or takes from
//! none (what one took is given back when a later one refuses).

use super::Gateway;
use crate::domain::{ApiKey, Ask, Grant, Lease};
use crate::error::{GatewayError, LimitError};
use crate::ports::{Ports, RateDecision, RateLimiter};

/// Tokens taken of one tokens-per-minute limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Taken {
    /// The key's limit on one model (else the key's own).
    pub(super) per_model: bool,
    pub(super) limit: u32,
    pub(super) tokens: i64,
    pub(super) decision: RateDecision,
}

/// The tokens a request took: of the key's limit, of its model's.
pub(super) type TakenTokens = [Option<Taken>; 2];

/// The limiter subject of a key's requests (or `tokens`), on `model`
/// alone when given.
fn subject(key_id: &str, model: Option<&str>, tokens: bool) -> String {
    let prefix = if tokens { "tpm:" } else { "" };
    match model {
        Some(m) => format!("{prefix}{key_id}/{m}"),
        None => format!("{prefix}{key_id}"),
    }
}

impl<P: Ports> Gateway<P> {
    /// Count the request against the key's RPM, then the key's RPM on
    /// `model`; the key's decision (for the headers).
    pub(super) async fn admit_rate(
        &self,
        key: &ApiKey,
        model: &str,
    ) -> Result<RateDecision, GatewayError> {
        let d = self.admit_key_rate(key).await?;
        self.admit_model_rate(key, model).await?;
        Ok(d)
    }

    /// Count the request against the key's own RPM alone: the cheap
    /// refusal taken before the gateway does costly work for a request
    /// (decoding a compressed body).
    pub(super) async fn admit_key_rate(&self, key: &ApiKey) -> Result<RateDecision, GatewayError> {
        let rpm = self.rpm_of(key);
        let d = self.step(&subject(&key.id, None, false), rpm, 1).await?;
        if !d.allowed {
            return Err(limited(rpm, &d, None));
        }
        Ok(d)
    }

    /// Count the request against the key's RPM on `model`, if it has one;
    /// refused, the request is given back to the key's own RPM too.
    pub(super) async fn admit_model_rate(
        &self,
        key: &ApiKey,
        model: &str,
    ) -> Result<(), GatewayError> {
        let rpm = self.rpm_of(key);
        if let Some(per_model) = key.model_limits.get(model).and_then(|l| l.rpm) {
            let on_model = self
                .step(&subject(&key.id, Some(model), false), per_model, 1)
                .await;
            if !on_model.as_ref().is_ok_and(|m| m.allowed) {
                self.refund(&subject(&key.id, None, false), rpm, 1).await;
            }
            let m = on_model?;
            if !m.allowed {
                return Err(limited(per_model, &m, Some(model)));
            }
        }
        Ok(())
    }

    /// [`Self::admit_rate`] and the reservation of `ask` as one step of
    /// the ports (one round trip where the limiter and the counters share a
    /// store), for a key whose only per-minute limit is its RPM: the
    /// decision and the grant; `None` when the key also has an RPM on
    /// `model` (the caller then takes the steps one by one).
    pub(super) async fn rate_and_reserve(
        &self,
        key: &ApiKey,
        model: &str,
        lease: &Lease,
        ask: &Ask,
    ) -> Result<Option<(RateDecision, Option<Grant>)>, GatewayError> {
        let rpm = self.rpm_of(key);
        if rpm == 0 || key.model_limits.get(model).and_then(|l| l.rpm).is_some() {
            return Ok(None);
        }
        let subject = subject(&key.id, None, false);
        let now = self.now_ms();
        let (d, grant) = self
            .ports()
            .step_and_reserve(&subject, rpm, now, lease, ask)
            .await?;
        if !d.allowed {
            return Err(limited(rpm, &d, None));
        }
        Ok(Some((d, grant)))
    }

    fn rpm_of(&self, key: &ApiKey) -> u32 {
        key.rpm.unwrap_or(self.config().default_rpm)
    }

    /// Take `tokens` of the key's TPM and of its TPM on `model`, each if
    /// set: both or neither.
    pub(super) async fn take_tokens(
        &self,
        key: &ApiKey,
        model: &str,
        tokens: i64,
    ) -> Result<TakenTokens, GatewayError> {
        let limits = [
            (key.tpm, false),
            (key.model_limits.get(model).and_then(|l| l.tpm), true),
        ];
        let mut taken: TakenTokens = [None, None];
        for (i, (limit, per_model)) in limits.into_iter().enumerate() {
            let Some(limit) = limit else { continue };
            let name = per_model.then_some(model);
            let d = self
                .step(&subject(&key.id, name, true), limit, tokens)
                .await;
            match d {
                Ok(decision) if decision.allowed => {
                    taken[i] = Some(Taken {
                        per_model,
                        limit,
                        tokens,
                        decision,
                    });
                }
                refused => {
                    self.give_back(&key.id, model, &taken, tokens).await;
                    let d = refused?;
                    return Err(LimitError::TokensLimited {
                        limit,
                        requested: tokens,
                        retry_after_ms: d.retry_after_ms,
                        reset_ms: d.reset_ms,
                        model: name.map(str::to_owned),
                    }
                    .into());
                }
            }
        }
        Ok(taken)
    }

    /// Give back `unused` of what `taken` took (a failure is logged: the
    /// limit is then stricter for a minute, never looser).
    pub(super) async fn give_back(
        &self,
        key_id: &str,
        model: &str,
        taken: &TakenTokens,
        unused: i64,
    ) {
        if unused <= 0 {
            return;
        }
        for t in taken.iter().flatten() {
            let name = t.per_model.then_some(model);
            self.refund(&subject(key_id, name, true), t.limit, unused)
                .await;
        }
    }

    pub(super) async fn step(
        &self,
        subject: &str,
        per_minute: u32,
        cost: i64,
    ) -> Result<RateDecision, GatewayError> {
        // A limit of 0 (only possible by editing the store directly) is
        // refused here, so no limiter has to special-case it.
        if per_minute == 0 {
            return Ok(crate::limiter::gcra(None, 0, 0).0);
        }
        let now = self.now_ms();
        let limiter = self.ports().limiter();
        Ok(limiter.acquire(subject, per_minute, cost, now).await?)
    }

    async fn refund(&self, subject: &str, per_minute: u32, units: i64) {
        let now = self.now_ms();
        let limiter = self.ports().limiter();
        if let Err(e) = limiter.refund(subject, per_minute, units, now).await {
            tracing::warn!(error = %e, "unused allowance not given back");
        }
    }
}

fn limited(limit: u32, d: &RateDecision, model: Option<&str>) -> GatewayError {
    LimitError::RateLimited {
        limit,
        retry_after_ms: d.retry_after_ms,
        reset_ms: d.reset_ms,
        model: model.map(str::to_owned),
    }
    .into()
}
