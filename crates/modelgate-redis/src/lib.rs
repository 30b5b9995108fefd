//! Redis counters for ModelGate, shared by every gateway instance (Lambdas,
//! several native servers): the rate limiter (GCRA as one Lua script) and
//! quota and budget counters ([`RedisCounters`], accounting in front of a
//! store), each exact across
//! instances because each step is one script.
//!
//! # Layout
//! All of this crate's IO is the Redis connection: one
//! `ConnectionManager` per process, made on first use (a Redis that is down
//! at start does not stop the process) and reconnecting by itself. The
//! script reads Redis's own clock (`TIME`), so skew between instances
//! cannot loosen the limit. When Redis cannot be reached the limiter
//! answers an error, which the gateway turns into a 503: never a silent
//! unlimited gateway.

mod quota;

use std::time::Duration;

use modelgate_core::error::StoreError;
use modelgate_core::limiter;
use modelgate_core::ports::{RateDecision, RateLimiter};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::sync::OnceCell;

pub use quota::RedisCounters;

/// `gcra(key, increment, window)`: one GCRA step on `key` taking
/// `increment` (the interval times the cost, µs) within `window` (µs), at
/// Redis's own time. Returns allowed (0/1), the TAT stored or found (µs),
/// now (µs).
const GCRA_FN: &str = r"
local function gcra(key, interval, window)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tat = tonumber(redis.call('GET', key))
  local base = now
  if tat and tat > now then base = tat end
  local new_tat = base + interval
  if new_tat - now > window then
    return 0, tat or 0, now
  end
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  return 1, new_tat, now
end
";

/// One GCRA step ([`GCRA_FN`]) on KEYS[1] with ARGV increment and window:
/// {allowed, TAT, now}.
const GCRA: &str = "return {gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))}";

/// The limiter's key of `subject`.
pub(crate) fn rate_key(subject: &str) -> String {
    format!("mg:rl:{subject}")
}

/// The decision of a [`GCRA_FN`] step of `cost` on a limit of `limit`.
pub(crate) fn decision(
    (allowed, tat, now): (i64, i64, i64),
    limit: u32,
    cost: i64,
) -> RateDecision {
    let (new_tat, stored) = if allowed == 1 {
        (Some(tat), None)
    } else {
        (None, Some(tat))
    };
    limiter::store_decision(new_tat, stored, now, limit, cost)
}

/// Move the TAT of KEYS[1] back by ARGV[1] µs (tokens given back), at
/// Redis's own time; a TAT no longer ahead of now is dropped.
const REFUND: &str = r"
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local new_tat = tat - tonumber(ARGV[1])
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
end
return 1
";

/// How long a Redis call may take before the request is answered with 503.
const TIMEOUT: Duration = Duration::from_millis(1000);

/// One Redis connection per process: made on first use, reconnecting by
/// itself, every call bounded by [`TIMEOUT`].
pub(crate) struct Connection {
    client: Client,
    conn: OnceCell<ConnectionManager>,
}

impl Connection {
    fn new(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            client: Client::open(url).map_err(unavailable)?,
            conn: OnceCell::new(),
        })
    }

    async fn get(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                self.client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        Ok(conn.clone())
    }
}

/// The Redis-backed [`RateLimiter`].
pub struct RedisLimiter {
    redis: Connection,
    script: Script,
    refund: Script,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter").finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisLimiter {
    /// A limiter for the Redis at `url` (`redis://host:port`); connects on
    /// first use.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            redis: Connection::new(url)?,
            script: Script::new(&[GCRA_FN, GCRA].concat()),
            refund: Script::new(REFUND),
        })
    }

    /// One GCRA step taking `cost` of `limit` per minute on `key`.
    async fn step(&self, key: String, limit: u32, cost: i64) -> Result<RateDecision, StoreError> {
        let (interval, window) = limiter::gcra_params(limit);
        let mut conn = self.redis.get().await?;
        let stepped = self
            .script
            .key(key)
            .arg(interval.saturating_mul(cost.max(0)))
            .arg(window)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(decision(stepped, limit, cost))
    }
}

impl RateLimiter for RedisLimiter {
    async fn acquire(
        &self,
        subject: &str,
        per_minute: u32,
        cost: i64,
        _now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        self.step(rate_key(subject), per_minute, cost).await
    }

    async fn refund(
        &self,
        subject: &str,
        per_minute: u32,
        units: i64,
        _now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.redis.get().await?;
        let _: i64 = self
            .refund
            .key(rate_key(subject))
            .arg(limiter::refund_us(per_minute, units))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
