//! Prices and cost: what a request cost, computed once at settlement.
//!
//! Prices are USD per million tokens, as every provider lists them. They
//! are kept as integer micro-dollars per million tokens (pico-dollars per
//! token) and costs as integer nano-dollars, so sums are exact and every
//! store adds the same numbers.

use serde::{Deserialize, Serialize};

use crate::backend::Usage;
use crate::error::RequestError;

/// The highest price accepted, USD per million tokens.
const MAX_PRICE_USD: f64 = 1_000_000.0;

/// Prices of a model or a deployment (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PricesUsd", into = "PricesUsd")]
pub struct Prices {
    /// Input tokens not served from the upstream's prompt cache.
    pub input: u64,
    /// Input tokens served from the cache (`None`: as `input`).
    pub cached_input: Option<u64>,
    /// Output tokens.
    pub output: u64,
    /// Input tokens written to the prompt cache for five minutes (`None`:
    /// 1.25 times `input`, Anthropic's rate).
    pub cache_write: Option<u64>,
    /// Input tokens written to the prompt cache for an hour (`None`: twice
    /// `input`).
    pub cache_write_1h: Option<u64>,
}

/// The JSON form: USD per million tokens.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PricesUsd {
    input: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cached_input: Option<f64>,
    output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_write: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_write_1h: Option<f64>,
}

fn micros(field: &str, usd: f64) -> Result<u64, String> {
    if !(0.0..=MAX_PRICE_USD).contains(&usd) {
        return Err(format!(
            "prices.{field} must be a number of USD per million tokens from 0 to {MAX_PRICE_USD}"
        ));
    }
    // In range, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((usd * 1e6).round() as u64)
}

#[allow(clippy::cast_precision_loss)]
fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

impl TryFrom<PricesUsd> for Prices {
    type Error = String;
    fn try_from(p: PricesUsd) -> Result<Self, String> {
        Ok(Self {
            input: micros("input", p.input)?,
            cached_input: p
                .cached_input
                .map(|c| micros("cached_input", c))
                .transpose()?,
            output: micros("output", p.output)?,
            cache_write: p
                .cache_write
                .map(|c| micros("cache_write", c))
                .transpose()?,
            cache_write_1h: p
                .cache_write_1h
                .map(|c| micros("cache_write_1h", c))
                .transpose()?,
        })
    }
}

impl From<Prices> for PricesUsd {
    fn from(p: Prices) -> Self {
        Self {
            input: usd(p.input),
            cached_input: p.cached_input.map(usd),
            output: usd(p.output),
            cache_write: p.cache_write.map(usd),
            cache_write_1h: p.cache_write_1h.map(usd),
        }
    }
}

impl Prices {
    /// Read prices from an admin's JSON, with an OpenAI-shaped error.
    pub fn parse(v: &serde_json::Value) -> Result<Self, RequestError> {
        serde_json::from_value(v.clone())
            .map_err(|e| RequestError::invalid(format!("Invalid prices: {e}"), Some("prices")))
    }

    /// The dearest price an input token may have (a cache read or write,
    /// or plain input).
    pub fn dearest_input(&self) -> u64 {
        let (write, write_1h) = self.cache_write_prices();
        self.input
            .max(self.cached_input.unwrap_or(0))
            .max(write)
            .max(write_1h)
    }

    /// The prices of a five-minute and an hour's cache write.
    fn cache_write_prices(&self) -> (u64, u64) {
        (
            self.cache_write
                .unwrap_or_else(|| self.input.saturating_mul(5) / 4),
            self.cache_write_1h
                .unwrap_or_else(|| self.input.saturating_mul(2)),
        )
    }

    /// What `usage` cost, in nano-dollars: cached input at the cached
    /// price, cache writes at theirs, the rest of the input at the input
    /// price (each token once).
    pub fn cost_nanos(&self, usage: &Usage) -> i64 {
        let prompt = usage.prompt_tokens.max(0);
        let cached = usage.cached_tokens.clamp(0, prompt);
        let w1h = usage.cache_writes.1.clamp(0, prompt - cached);
        let w5m = usage.cache_writes.0.clamp(0, prompt - cached - w1h);
        let fresh = prompt - cached - w1h - w5m;
        let (write, write_1h) = self.cache_write_prices();
        let pico = i128::from(fresh) * i128::from(self.input)
            + i128::from(cached) * i128::from(self.cached_input.unwrap_or(self.input))
            + i128::from(w5m) * i128::from(write)
            + i128::from(w1h) * i128::from(write_1h)
            + i128::from(usage.completion_tokens.max(0)) * i128::from(self.output);
        i64::try_from((pico + 500) / 1000).unwrap_or(i64::MAX)
    }
}

/// The largest budget accepted, USD.
const MAX_BUDGET_USD: f64 = 1e6;

fn nanos_of(usd: f64) -> Result<i64, String> {
    if !(0.0..=MAX_BUDGET_USD).contains(&usd) {
        return Err(format!(
            "must be a number of USD from 0 to {MAX_BUDGET_USD}"
        ));
    }
    // In range, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    Ok((usd * 1e9).round() as i64)
}

/// `budget_usd` of a patch: absent, `null` (unlimited) or USD, as
/// nano-dollars.
pub(crate) fn usd_patch<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<i64>>, D::Error> {
    let v = Option::<f64>::deserialize(d)?;
    v.map(nanos_of)
        .transpose()
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A USD amount as nano-dollars.
pub(crate) fn usd_set<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    nanos_of(f64::deserialize(d)?)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Nano-dollars as USD, for display.
#[allow(clippy::cast_precision_loss)]
pub fn nanos_to_usd(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: i64, cached: i64, completion: i64) -> Usage {
        Usage::reported(prompt, completion).with_cached(cached)
    }

    #[test]
    fn cached_input_is_priced_as_cached_and_not_twice() {
        let p: Prices =
            serde_json::from_str(r#"{"input":2.5,"cached_input":1.25,"output":10}"#).unwrap();
        // 600 fresh x 2.5 + 400 cached x 1.25 + 100 x 10 = 3000 USD/M
        // tokens = 0.003 USD.
        assert_eq!(p.cost_nanos(&usage(1000, 400, 100)), 3_000_000);
        // Without a cached price, cached tokens cost the input price.
        let p: Prices = serde_json::from_str(r#"{"input":2.5,"output":10}"#).unwrap();
        assert_eq!(p.cost_nanos(&usage(1000, 400, 100)), 3_500_000);
    }

    #[test]
    fn small_prices_are_exact_and_round_once() {
        // 0.075 USD/M = 75,000 pico-dollars a token.
        let p: Prices = serde_json::from_str(r#"{"input":0.075,"output":0.3}"#).unwrap();
        assert_eq!(p.cost_nanos(&usage(7, 0, 0)), 525);
        assert_eq!(p.cost_nanos(&usage(1_000_000, 0, 1_000_000)), 375_000_000);
        // A reported cache larger than the prompt is read as the prompt.
        assert_eq!(p.cost_nanos(&usage(10, 50, 0)), 750);
        // Sub-nano prices round the request's sum, once.
        let p: Prices = serde_json::from_str(r#"{"input":0.0015,"output":0}"#).unwrap();
        assert_eq!(p.cost_nanos(&usage(1, 0, 0)), 2);
        assert_eq!(p.cost_nanos(&usage(7, 0, 0)), 11);
    }

    #[test]
    fn prices_round_trip_and_refuse_nonsense() {
        let p: Prices = serde_json::from_str(r#"{"input":0.15,"output":0.6}"#).unwrap();
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            serde_json::json!({"input":0.15,"output":0.6})
        );
        for bad in [
            r#"{"input":-1,"output":1}"#,
            r#"{"input":1}"#,
            r#"{"input":1,"output":1,"extra":1}"#,
            r#"{"input":1e9,"output":1}"#,
        ] {
            assert!(serde_json::from_str::<Prices>(bad).is_err(), "{bad}");
        }
        assert!(Prices::parse(&serde_json::json!({"input": "x"})).is_err());
    }
}
