//! Quota reservation counters in Redis, in front of any store.
//!
//! The store stays the durable record (keys, usage, `quota_used` charged
//! by every settlement); Redis holds the counters admission reads, one hash
//! per key (`mg:q:<key id>`: `quota`, `used`, `reserved`), moved only by
//! Lua scripts, so reservations are exact across every instance without a
//! write to the store per request. That matters most for SQLite on EFS,
//! where every store write takes a file lock over NFS.
//!
//! - A key's hash is written when the admin creates the key or changes its
//!   limits ([`Accounting::key_written`]), and rebuilt from the store's
//!   record when missing (a new Redis, or one that lost its data).
//! - Settlement writes the store first (idempotent per request id), then
//!   moves the counters once per request id (a marker with a day's expiry).
//! - Every reservation holds a lease (`mg:lease:<request id>`, a hash, and
//!   its end in the sorted set `mg:leases`), written by the reservation's
//!   script and removed by the settlement's.
//! - Redis unreachable: reservations fail (the gateway answers 503) and
//!   settlement reports the error so the gateway retries it; never an
//!   unlimited gateway.

use std::sync::Arc;

use modelgate_core::domain::{ApiKey, Ask, Grant, Lease, Settlement};
use modelgate_core::error::StoreError;
use modelgate_core::limiter;
use modelgate_core::ports::{Accounting, RateDecision, StepAndReserve, Store};
use redis::Script;

use crate::{Connection, GCRA_FN, decision, rate_key, unavailable};

/// `counters()`: the quota and budget counters of KEYS[1] (as `reserve`
/// takes them), or nil when they are missing (rebuild them, then retry);
/// `reserve(h)`: reserve tokens (ARGV[1] min to ARGV[2] max, quota window
/// ARGV[9]) and nano-dollars (ARGV[10] min to ARGV[11] max, budget window
/// ARGV[12]) of those counters, as
/// [`modelgate_core::ports::Accounting::reserve`] says, and write the
/// lease: hash KEYS[3] (request id ARGV[3], key id ARGV[4], model ARGV[5],
/// backend ARGV[6], created ARGV[7], expires ARGV[8], and the amounts) and
/// its end in the sorted set KEYS[2]. Returns {0} when either falls short,
/// else {1, tokens, money}.
const RESERVE_FN: &str = r"
local function counters()
  local h = redis.call('HMGET', KEYS[1], 'quota', 'used', 'reserved', 'qwindow',
    'budget', 'bused', 'breserved', 'bwindow')
  if not h[1] or not h[5] then return nil end
  return h
end
local function reserve(h)
  local function grant(limit, used, reserved, window, min, max, now)
    if tonumber(window) < now then used = 0 else used = tonumber(used) end
    if limit == 'none' then return max end
    local g = math.min(max, tonumber(limit) - used - tonumber(reserved))
    if g < min then return nil end
    return g
  end
  local qw, bw = tonumber(ARGV[9]), tonumber(ARGV[12])
  local tokens = grant(h[1], h[2], h[3], h[4], tonumber(ARGV[1]), tonumber(ARGV[2]), qw)
  local money = grant(h[5], h[6], h[7], h[8], tonumber(ARGV[10]), tonumber(ARGV[11]), bw)
  if not tokens or not money then return {0} end
  if tonumber(h[4]) < qw then redis.call('HSET', KEYS[1], 'used', 0, 'qwindow', qw) end
  if tonumber(h[8]) < bw then redis.call('HSET', KEYS[1], 'bused', 0, 'bwindow', bw) end
  redis.call('HINCRBY', KEYS[1], 'reserved', tokens)
  redis.call('HINCRBY', KEYS[1], 'breserved', money)
  redis.call('HSET', KEYS[3], 'request_id', ARGV[3], 'key_id', ARGV[4], 'model', ARGV[5],
    'backend', ARGV[6], 'created_at', ARGV[7], 'expires_at', ARGV[8], 'amount', tokens, 'money', money)
  redis.call('ZADD', KEYS[2], ARGV[8], ARGV[3])
  return {1, tokens, money}
end
";

/// [`RESERVE_FN`] as a script: {-1} when the counters are missing, else
/// what `reserve` returns.
const RESERVE: &str = r"
local h = counters()
if not h then return {-1} end
return reserve(h)
";

/// A request's RPM step (`gcra` on KEYS[4] with ARGV[13] and ARGV[14])
/// and, only if it is allowed, [`RESERVE`]'s reservation: {-1} when the
/// counters are missing (nothing stepped: rebuild them, then retry), else
/// {allowed, TAT, now} with what `reserve` returns appended when allowed.
const STEP_AND_RESERVE: &str = r"
local h = counters()
if not h then return {-1} end
local allowed, tat, now = gcra(KEYS[4], tonumber(ARGV[13]), tonumber(ARGV[14]))
if allowed == 0 then return {0, tat, now} end
local r = reserve(h)
return {1, tat, now, r[1], r[2], r[3]}
";

/// Write KEYS[1] from the store's record: ARGV quota ('none' when
/// unlimited), used, quota window, budget ('none'), budget used, budget
/// window; the reservations are kept when the hash exists. ARGV[7] = 1
/// sets the quota's used and window even when the hash exists (an admin
/// reset), ARGV[8] = 1 the budget's.
const SET: &str = r"
local exists = redis.call('HEXISTS', KEYS[1], 'budget') == 1
redis.call('HSET', KEYS[1], 'quota', ARGV[1], 'budget', ARGV[4])
if not exists then
  redis.call('HSET', KEYS[1], 'used', ARGV[2], 'qwindow', ARGV[3], 'bused', ARGV[5], 'bwindow', ARGV[6])
  if redis.call('HEXISTS', KEYS[1], 'reserved') == 0 then redis.call('HSET', KEYS[1], 'reserved', 0) end
  redis.call('HSET', KEYS[1], 'breserved', 0)
else
  if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'used', ARGV[2], 'qwindow', ARGV[3]) end
  if ARGV[8] == '1' then redis.call('HSET', KEYS[1], 'bused', ARGV[5], 'bwindow', ARGV[6]) end
end
return 1
";

/// End the lease of request ARGV[3] (KEYS[3], KEYS[4]); once per request
/// id (marker KEYS[2]): on KEYS[1], when it exists, release -ARGV[1]
/// reserved tokens and charge ARGV[2] in quota window ARGV[4], release
/// -ARGV[5] reserved nano-dollars and charge ARGV[6] in budget window
/// ARGV[7] (a charge of an earlier window than the counter's is dropped).
const SETTLE: &str = r"
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('DEL', KEYS[4])
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', 86400) then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local function settle(reserved, used, window, release, charge, at)
    local left = redis.call('HINCRBY', KEYS[1], reserved, release)
    if left < 0 then redis.call('HSET', KEYS[1], reserved, 0) end
    local current = tonumber(redis.call('HGET', KEYS[1], window) or '0')
    if current == at then redis.call('HINCRBY', KEYS[1], used, charge)
    elseif current < at then redis.call('HSET', KEYS[1], used, charge, window, at) end
  end
  settle('reserved', 'used', 'qwindow', ARGV[1], ARGV[2], tonumber(ARGV[4]))
  settle('breserved', 'bused', 'bwindow', ARGV[5], ARGV[6], tonumber(ARGV[7]))
end
return 1
";

/// Quota and budget counters in Redis, in front of the store `S` (which
/// keeps the keys and the usage records).
pub struct RedisCounters<S> {
    store: Arc<S>,
    redis: Connection,
    reserve: Script,
    step_and_reserve: Script,
    set: Script,
    settle: Script,
}

impl<S> std::fmt::Debug for RedisCounters<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters").finish_non_exhaustive()
    }
}

fn counters(key_id: &str) -> String {
    format!("mg:q:{key_id}")
}

/// The sorted set of leases by their end.
const LEASES: &str = "mg:leases";

fn lease_hash(request_id: &str) -> String {
    format!("mg:lease:{request_id}")
}

impl<S: Store> RedisCounters<S> {
    /// Counters in the Redis at `url` (connected on first use) in front of
    /// `store`.
    pub fn new(store: Arc<S>, url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            redis: Connection::new(url)?,
            reserve: Script::new(&[RESERVE_FN, RESERVE].concat()),
            step_and_reserve: Script::new(&[GCRA_FN, RESERVE_FN, STEP_AND_RESERVE].concat()),
            set: Script::new(SET),
            settle: Script::new(SETTLE),
        })
    }

    /// Write a key's counters from its store record; `reset` also
    /// overwrites the quota's (`.0`) and the budget's (`.1`) used and
    /// window when the counters exist.
    async fn set_counters(&self, k: &ApiKey, reset: (bool, bool)) -> Result<(), StoreError> {
        let limit = |l: Option<i64>| l.map_or_else(|| "none".to_owned(), |q| q.to_string());
        let mut conn = self.redis.get().await?;
        let _: i64 = self
            .set
            .key(counters(&k.id))
            .arg(limit(k.quota))
            .arg(k.quota_used)
            .arg(k.quota_window)
            .arg(limit(k.budget_nanos))
            .arg(k.budget_used_nanos)
            .arg(k.budget_window)
            .arg(i64::from(reset.0))
            .arg(i64::from(reset.1))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Run a reservation `script` (keys and arguments of [`RESERVE`], then
    /// those of `step`: its key, increment and window), rebuilding the
    /// key's counters from the store when they are missing: its answer
    /// (`None`: the store has no such key).
    async fn reserving(
        &self,
        script: &Script,
        lease: &Lease,
        ask: &Ask,
        step: Option<(String, i64, i64)>,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let key_id = lease.key_id.as_str();
        for _ in 0..2 {
            let mut conn = self.redis.get().await?;
            let mut call = script.key(counters(key_id));
            call.key(LEASES)
                .key(lease_hash(&lease.request_id))
                .arg(ask.tokens.0)
                .arg(ask.tokens.1)
                .arg(&lease.request_id)
                .arg(key_id)
                .arg(&lease.model)
                .arg(&lease.backend)
                .arg(lease.created_at)
                .arg(lease.expires_at)
                .arg(ask.quota_window)
                .arg(ask.money.0)
                .arg(ask.money.1)
                .arg(ask.budget_window);
            if let Some((key, increment, window)) = &step {
                call.key(key).arg(increment).arg(window);
            }
            let got: Vec<i64> = call.invoke_async(&mut conn).await.map_err(unavailable)?;
            if got[..] != [-1] {
                return Ok(Some(got));
            }
            let Some(k) = self.store.get_key(key_id).await? else {
                return Ok(None);
            };
            self.set_counters(&k, (false, false)).await?;
        }
        Err(StoreError::Unavailable("quota counters vanished".into()))
    }
}

/// One request's RPM step and, if it is allowed, the reservation of its ask
/// with the lease: one script ([`STEP_AND_RESERVE`]), so one round trip,
/// for a limiter in the same Redis (its steps on Redis's clock).
impl<S: Store> StepAndReserve for RedisCounters<S> {
    async fn step_and_reserve(
        &self,
        subject: &str,
        per_minute: u32,
        _now_ms: i64,
        lease: &Lease,
        ask: &Ask,
    ) -> Result<(RateDecision, Option<Grant>), StoreError> {
        let (interval, window) = limiter::gcra_params(per_minute);
        let step = (rate_key(subject), interval, window);
        let got = self
            .reserving(&self.step_and_reserve, lease, ask, Some(step))
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("key {} is not stored", lease.key_id)))?;
        let [allowed, tat, now, ref reserved @ ..] = got[..] else {
            return Err(unavailable("unexpected answer to a reservation"));
        };
        let decision = decision((allowed, tat, now), per_minute, 1);
        Ok((decision, granted(reserved)))
    }
}

/// What `reserve` (see [`RESERVE_FN`]) answered: the grant, if any.
fn granted(got: &[i64]) -> Option<Grant> {
    match *got {
        [1, tokens, money] => Some(Grant { tokens, money }),
        _ => None,
    }
}

impl<S: Store> Accounting for RedisCounters<S> {
    async fn reserve(&self, lease: &Lease, ask: &Ask) -> Result<Option<Grant>, StoreError> {
        let got = self.reserving(&self.reserve, lease, ask, None).await?;
        Ok(got.and_then(|got| granted(&got)))
    }

    async fn settle(&self, s: &Settlement) -> Result<(), StoreError> {
        // The reservation was made here, not in the store.
        let in_store = Settlement {
            reserved: 0,
            reserved_money: 0,
            ..s.clone()
        };
        self.store.settle(&in_store).await?;
        let mut conn = self.redis.get().await?;
        let _: i64 = self
            .settle
            .key(counters(&s.key_id))
            .key(format!("mg:qs:{}", s.usage.request_id))
            .key(LEASES)
            .key(lease_hash(&s.usage.request_id))
            .arg(-s.reserved)
            .arg(s.charge())
            .arg(&s.usage.request_id)
            .arg(s.quota_window)
            .arg(-s.reserved_money)
            .arg(s.charge_money())
            .arg(s.budget_window)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn leases(&self, expired_by: Option<i64>) -> Result<Vec<Lease>, StoreError> {
        let mut conn = self.redis.get().await?;
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(LEASES)
            .arg("-inf")
            .arg(expired_by.map_or_else(|| "+inf".to_owned(), |t| t.to_string()))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(lease_hash(id));
        }
        let rows: Vec<std::collections::HashMap<String, String>> =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let num = |row: &std::collections::HashMap<String, String>, k: &str| {
            row.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0)
        };
        let mut leases: Vec<Lease> = rows
            .into_iter()
            // A lease settled between the two reads is gone: skip it.
            .filter(|row| row.contains_key("request_id"))
            .map(|row| Lease {
                amount: num(&row, "amount"),
                money: num(&row, "money"),
                created_at: num(&row, "created_at"),
                expires_at: num(&row, "expires_at"),
                request_id: row.get("request_id").cloned().unwrap_or_default(),
                key_id: row.get("key_id").cloned().unwrap_or_default(),
                model: row.get("model").cloned().unwrap_or_default(),
                backend: row.get("backend").cloned().unwrap_or_default(),
            })
            .collect();
        leases.sort_by_key(|l| (l.created_at, l.expires_at));
        Ok(leases)
    }

    async fn key_written(&self, key: &ApiKey, reset: (bool, bool)) -> Result<(), StoreError> {
        self.set_counters(key, reset).await
    }

    /// The live counters, read in one pipelined round trip; the store's
    /// when Redis has none or cannot be reached.
    async fn live(&self, mut keys: Vec<ApiKey>) -> Vec<ApiKey> {
        let read = async {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HMGET").arg(counters(&k.id)).arg(&[
                    "used",
                    "reserved",
                    "qwindow",
                    "bused",
                    "breserved",
                    "bwindow",
                ]);
            }
            let mut conn = self.redis.get().await?;
            pipe.query_async::<Vec<Vec<Option<i64>>>>(&mut conn)
                .await
                .map_err(unavailable)
        };
        match read.await {
            Ok(live) => {
                for (k, counts) in keys.iter_mut().zip(live) {
                    if let [Some(u), Some(r), Some(qw), Some(bu), Some(br), Some(bw)] = counts[..] {
                        (k.quota_used, k.quota_reserved, k.quota_window) = (u, r, qw);
                        (k.budget_used_nanos, k.budget_reserved_nanos) = (bu, br);
                        k.budget_window = bw;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "quota counters not read"),
        }
        keys
    }
}
