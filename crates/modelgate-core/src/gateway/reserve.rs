//! Admission's reservation: the worst case of a request, in tokens of the
//! key's tokens per minute, tokens of its quota and money of its budget,
//! held until settlement (which gives back what was not used); and, when
//! the client set no completion cap, the cap the gateway sets upstream so
//! no reservation can be exceeded.

use super::Gateway;
use super::limits::TakenTokens;
use crate::backend::Usage;
use crate::cost::Prices;
use crate::deployment::Deployment;
use crate::domain::{ApiKey, Ask, Grant, Lease, Model};
use crate::error::{GatewayError, LimitError, RequestError};
use crate::period;
use crate::ports::{Accounting, Ports, RateDecision};
use crate::request::ProxyRequest;

/// What admission holds for a request.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Reserved {
    /// Tokens and nano-dollars held.
    pub(super) tokens: i64,
    pub(super) money: i64,
    /// The windows the request was admitted in.
    pub(super) quota_window: i64,
    pub(super) budget_window: i64,
    /// The completion cap per choice the gateway sets upstream.
    pub(super) cap: Option<u64>,
    /// Tokens taken of the key's tokens per minute (and on the model).
    pub(super) tpm: TakenTokens,
}

/// The highest prices any deployment of `model` may charge (every input
/// token at the dearest input price, cache reads and writes included, since
/// which part of a prompt is cached is not known in advance); `None` when
/// nothing is priced.
fn worst_prices(model: &Model, deployments: &[Deployment]) -> Option<Prices> {
    let all = deployments
        .iter()
        .map(|d| d.prices.or(model.prices))
        .collect::<Option<Vec<Prices>>>()?;
    let input = all.iter().map(Prices::dearest_input).max()?;
    let output = all.iter().map(|p| p.output).max()?;
    Some(Prices {
        input,
        cached_input: None,
        output,
        cache_write: Some(input),
        cache_write_1h: Some(input),
    })
}

fn cost(p: &Prices, prompt: i64, output: i64) -> i64 {
    p.cost_nanos(&Usage::reported(prompt, output))
}

/// A request's worst case: its prompt bound and the output tokens it may
/// generate (over all its choices).
#[derive(Debug, Clone, Copy)]
struct Worst {
    prompt: i64,
    choices: i64,
    out_min: i64,
    out_max: i64,
    /// The gateway sets the completion cap (the client set none).
    capped: bool,
}

impl Worst {
    /// The worst case of `req` under the key's tokens per minute
    /// (`per_minute`: its own and on the model) with the gateway's default
    /// completion cap `default_max`.
    fn of(req: &ProxyRequest, per_minute: [Option<u32>; 2], default_max: u64) -> Self {
        let prompt = i64::try_from(req.prompt_bound).unwrap_or(i64::MAX);
        let choices = i64::try_from(req.choices).unwrap_or(1).max(1);
        // Output tokens: none, the client's cap, or up to the gateway's.
        let (out_min, out_max, capped) = if !req.endpoint.generates() {
            (0, 0, false)
        } else if let Some(max) = req.max_tokens {
            let n = i64::try_from(max)
                .unwrap_or(i64::MAX)
                .saturating_mul(choices);
            (n, n, false)
        } else {
            let cap = i64::try_from(default_max).unwrap_or(i64::MAX);
            // No more than a minute's tokens could ever allow, either.
            let per_minute = per_minute.into_iter().flatten().min();
            let most = per_minute.map_or(i64::MAX, |t| i64::from(t) - prompt);
            let out_max = cap.saturating_mul(choices).min(most).max(choices);
            (choices, out_max, true)
        };
        Self {
            prompt,
            choices,
            out_min,
            out_max,
            capped,
        }
    }

    /// The output a grant covers: no more than the worst case, the quota's
    /// `tokens` left after the prompt, or what its `money` buys at `prices`.
    fn covered(&self, tokens: Option<i64>, money: i64, prices: Option<Prices>) -> i64 {
        let mut out = self.out_max;
        if let Some(tokens) = tokens {
            out = out.min(tokens - self.prompt);
        }
        if let Some(p) = prices.filter(|p| p.output > 0) {
            // Output tokens the money covers after the prompt.
            let left = i128::from(money) * 1000 - i128::from(cost(&p, self.prompt, 0)) * 1000;
            let affordable = left.max(0) / i128::from(p.output);
            out = out.min(i64::try_from(affordable).unwrap_or(i64::MAX));
        }
        out
    }

    /// What to ask of the key's counters: tokens and, at `prices`, money,
    /// at least and at most, in the windows `at` names.
    fn ask(&self, prices: Option<Prices>, at: &Reserved) -> Ask {
        let money = prices.map_or((0, 0), |p| {
            (
                cost(&p, self.prompt, self.out_min),
                cost(&p, self.prompt, self.out_max),
            )
        });
        Ask {
            tokens: (
                self.prompt.saturating_add(self.out_min),
                self.prompt.saturating_add(self.out_max),
            ),
            money,
            quota_window: at.quota_window,
            budget_window: at.budget_window,
        }
    }

    /// The completion cap per choice for `out` output tokens, if the
    /// gateway sets it.
    fn cap(&self, out: i64) -> Option<u64> {
        self.capped
            .then(|| u64::try_from(out / self.choices).unwrap_or(1).max(1))
    }
}

impl<P: Ports> Gateway<P> {
    /// Count the request against the key's per-minute limits and reserve
    /// its worst case (see the module docs): the key's rate decision (for
    /// the headers) and what is held. `counted` is the key's own RPM
    /// decision when the request was already counted against it.
    pub(super) async fn reserve(
        &self,
        key: &ApiKey,
        (req, counted): (&ProxyRequest, Option<RateDecision>),
        lease: &Lease,
        model: &Model,
        deployments: &[Deployment],
    ) -> Result<(RateDecision, Reserved), GatewayError> {
        let admit_rate = async || match counted {
            Some(d) => self.admit_model_rate(key, &model.name).await.map(|()| d),
            None => self.admit_rate(key, &model.name).await,
        };
        // An unpriced model costs 0, so a budget would never stop it: only
        // models priced (0 included: marked free) are open to such a key.
        let prices = key
            .budget_nanos
            .and_then(|_| worst_prices(model, deployments));
        if key.budget_nanos.is_some() && prices.is_none() {
            return Err(RequestError::Unpriced(model.name.clone()).into());
        }
        let now = self.now_ms();
        let ask_windows = Reserved {
            quota_window: key.quota_period.window(now),
            budget_window: key.budget_period.window(now),
            ..Reserved::default()
        };
        let model_tpm = key.model_limits.get(&model.name).and_then(|l| l.tpm);
        let holds = key.quota.is_some() || key.budget_nanos.is_some();
        if !holds && key.tpm.or(model_tpm).is_none() {
            return Ok((admit_rate().await?, ask_windows));
        }
        let w = Worst::of(req, [key.tpm, model_tpm], self.config().default_max_tokens);
        let ask = w.ask(prices, &ask_windows);
        let folded = if holds && key.tpm.is_none() && model_tpm.is_none() && counted.is_none() {
            self.rate_and_reserve(key, &model.name, lease, &ask).await?
        } else {
            None
        };
        let (rate, tpm, reserved) = match folded {
            Some((rate, grant)) => (rate, [None, None], Ok(grant)),
            None => {
                let rate = admit_rate().await?;
                let tpm = self.take_tokens(key, &model.name, ask.tokens.1).await?;
                if !holds {
                    // The cap makes the tokens taken per minute the worst case.
                    let reserved = Reserved {
                        tpm,
                        cap: w.cap(w.out_max),
                        ..ask_windows
                    };
                    return Ok((rate, reserved));
                }
                (
                    rate,
                    tpm,
                    self.ports().accounts().reserve(lease, &ask).await,
                )
            }
        };
        let Ok(Some(Grant { tokens, money })) = reserved else {
            self.give_back(&key.id, &model.name, &tpm, ask.tokens.1)
                .await;
            reserved?;
            // Refused: which counter fell short is read from the key as it
            // stands now (concurrent requests moved it since it was read).
            let now_key = self.read_key(&key.id).await?;
            return Err(refusal(now_key.as_ref().unwrap_or(key), &ask, now).into());
        };
        let cap = w.cap(w.covered(key.quota.map(|_| tokens), money, prices));
        let reserved = Reserved {
            tokens,
            money,
            cap,
            tpm,
            ..ask_windows
        };
        Ok((rate, reserved))
    }
}

/// Which counter refused `ask`: the only one the key has, or with both,
/// the budget if its minimum does not fit in what `key` has left.
fn refusal(key: &ApiKey, ask: &Ask, now: i64) -> LimitError {
    let resets = |p: period::Period| {
        p.resets_at(now)
            .map(|at| u64::try_from(at - now).unwrap_or(0))
    };
    // Concurrent requests moved both counters since the refusal, so the
    // one to name is the one that cannot fit even now: the quota only if it
    // is short and the budget is not.
    let short =
        |limit: Option<i64>, used, reserved, min| limit.is_some_and(|l| l - used - reserved < min);
    let quota_short = short(
        key.quota,
        period::current(key.quota_used, key.quota_window, ask.quota_window),
        key.quota_reserved,
        ask.tokens.0,
    );
    let budget_short = short(
        key.budget_nanos,
        period::current(key.budget_used_nanos, key.budget_window, ask.budget_window),
        key.budget_reserved_nanos,
        ask.money.0,
    );
    if key.budget_nanos.is_some() && (budget_short || !quota_short) {
        LimitError::BudgetExceeded {
            resets_in_ms: resets(key.budget_period),
        }
    } else {
        LimitError::QuotaExceeded {
            resets_in_ms: resets(key.quota_period),
        }
    }
}
