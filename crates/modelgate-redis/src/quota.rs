//! Quota reservation counters in Redis, in front of any store.
//!
//! The store stays the durable record (keys, usage, `quota_used` charged
//! by every settlement); Redis holds the counters admission reads, one hash
//! per key (`mg:q:<key id>`: `quota`, `used`, `reserved`), moved only by
//! Lua scripts, so reservations are exact across every instance without a
//! write to the store per request. That matters most for SQLite on EFS,
//! where every store write takes a file lock over NFS.
//!
//! - A key's hash is written when the key is created or its quota changed
//!   through this store, and rebuilt from the store's `quota_used` when
//!   missing (a new Redis, or one that lost its data).
//! - Settlement writes the store first (idempotent per request id), then
//!   moves the counters once per request id (a marker with a day's expiry).
//! - Every reservation holds a lease (`mg:lease:<request id>`, a hash, and
//!   its end in the sorted set `mg:leases`), written by the reservation's
//!   script and removed by the settlement's.
//! - Redis unreachable: reservations fail (the gateway answers 503) and
//!   settlement reports the error so the gateway retries it; never an
//!   unlimited gateway.

use modelgate_core::domain::{
    ApiKey, KeyPatch, Lease, Model, ModelPatch, NewKey, NewModel, ResponseSummary, Settlement,
    StoredResponse, UsageQuery, UsageRow,
};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{KeyStore, ModelStore, ResponseStore, Store, UsageStore};
use redis::Script;

use crate::{Connection, unavailable};

/// Reserve between ARGV[1] (min) and ARGV[2] (max) tokens of KEYS[1], and
/// write the lease: hash KEYS[3] (request id ARGV[3], key id ARGV[4], model
/// ARGV[5], backend ARGV[6], created ARGV[7], expires ARGV[8], and the
/// amount) and its end in the sorted set KEYS[2]. Returns -1 when the
/// counters are missing (rebuild them, then retry), else the tokens
/// reserved (0: fewer than min were left).
const RESERVE: &str = r"
local quota = redis.call('HGET', KEYS[1], 'quota')
if not quota then return -1 end
local min, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local grant = max
if quota ~= 'none' then
  local used = tonumber(redis.call('HGET', KEYS[1], 'used'))
  local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved'))
  grant = math.min(max, tonumber(quota) - used - reserved)
  if grant < min then return 0 end
end
redis.call('HINCRBY', KEYS[1], 'reserved', grant)
redis.call('HSET', KEYS[3], 'request_id', ARGV[3], 'key_id', ARGV[4], 'model', ARGV[5],
  'backend', ARGV[6], 'created_at', ARGV[7], 'expires_at', ARGV[8], 'amount', grant)
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[3])
return grant
";

/// Write KEYS[1] from the store's record: ARGV quota ('none' when
/// unlimited), used; `reserved` is kept when the hash exists. ARGV[3] = 1
/// sets `used` even when the hash exists (an admin reset).
const SET: &str = r"
local exists = redis.call('EXISTS', KEYS[1]) == 1
redis.call('HSET', KEYS[1], 'quota', ARGV[1])
if not exists then
  redis.call('HSET', KEYS[1], 'used', ARGV[2], 'reserved', 0)
elseif ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'used', ARGV[2])
end
return 1
";

/// End the lease of request ARGV[3] (KEYS[3], KEYS[4]); once per request
/// id (marker KEYS[2]): release -ARGV[1] reserved tokens and charge ARGV[2]
/// used ones on KEYS[1], when it exists.
const SETTLE: &str = r"
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('DEL', KEYS[4])
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', 86400) then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local left = redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[1])
  if left < 0 then redis.call('HSET', KEYS[1], 'reserved', 0) end
  redis.call('HINCRBY', KEYS[1], 'used', ARGV[2])
end
return 1
";

/// A store whose quota reservations live in Redis.
pub struct RedisQuota<S> {
    store: S,
    redis: Connection,
    reserve: Script,
    set: Script,
    settle: Script,
}

impl<S> std::fmt::Debug for RedisQuota<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQuota").finish_non_exhaustive()
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

impl<S: Store> RedisQuota<S> {
    /// Quota counters in the Redis at `url` (connected on first use) in
    /// front of `store`.
    pub fn new(store: S, url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            redis: Connection::new(url)?,
            reserve: Script::new(RESERVE),
            set: Script::new(SET),
            settle: Script::new(SETTLE),
        })
    }

    /// Write a key's counters from its store record; `reset_used` also
    /// overwrites `used` when the counters exist.
    async fn set_counters(&self, k: &ApiKey, reset_used: bool) -> Result<(), StoreError> {
        let quota = k.quota.map_or_else(|| "none".to_owned(), |q| q.to_string());
        let mut conn = self.redis.get().await?;
        let _: i64 = self
            .set
            .key(counters(&k.id))
            .arg(quota)
            .arg(k.quota_used)
            .arg(i64::from(reset_used))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl<S: Store> RedisQuota<S> {
    /// `keys` with their live counters (what the admin API shows), read in
    /// one pipelined round trip; the store's when Redis has none or cannot
    /// be reached.
    async fn with_counters(&self, mut keys: Vec<ApiKey>) -> Vec<ApiKey> {
        let read = async {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HMGET")
                    .arg(counters(&k.id))
                    .arg("used")
                    .arg("reserved");
            }
            let mut conn = self.redis.get().await?;
            pipe.query_async::<Vec<(Option<i64>, Option<i64>)>>(&mut conn)
                .await
                .map_err(unavailable)
        };
        match read.await {
            Ok(live) => {
                for (k, counts) in keys.iter_mut().zip(live) {
                    if let (Some(used), Some(reserved)) = counts {
                        k.quota_used = used;
                        k.quota_reserved = reserved;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "quota counters not read"),
        }
        keys
    }
}

impl<S: Store> KeyStore for RedisQuota<S> {
    async fn find_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.store.find_key_by_hash(hash).await
    }

    async fn insert_key(&self, key: NewKey) -> Result<ApiKey, StoreError> {
        let k = self.store.insert_key(key).await?;
        // A failure here is repaired by the first reservation.
        if let Err(e) = self.set_counters(&k, true).await {
            tracing::warn!(key_id = %k.id, error = %e, "quota counters not written");
        }
        Ok(k)
    }

    async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        match self.store.get_key(id).await? {
            Some(k) => Ok(self.with_counters(vec![k]).await.pop()),
            None => Ok(None),
        }
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self.with_counters(self.store.list_keys().await?).await)
    }

    async fn update_key(
        &self,
        id: &str,
        patch: KeyPatch,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        let counts = patch.quota.is_some() || patch.quota_used.is_some();
        let reset_used = patch.quota_used.is_some();
        let k = self.store.update_key(id, patch, now_ms).await?;
        if let Some(k) = k.as_ref().filter(|_| counts) {
            // The admin sees an error rather than counters left stale.
            self.set_counters(k, reset_used).await?;
        }
        Ok(k)
    }

    async fn reserve_quota(
        &self,
        lease: &Lease,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, StoreError> {
        let key_id = lease.key_id.as_str();
        for _ in 0..2 {
            let mut conn = self.redis.get().await?;
            let got: i64 = self
                .reserve
                .key(counters(key_id))
                .key(LEASES)
                .key(lease_hash(&lease.request_id))
                .arg(min)
                .arg(max)
                .arg(&lease.request_id)
                .arg(key_id)
                .arg(&lease.model)
                .arg(&lease.backend)
                .arg(lease.created_at)
                .arg(lease.expires_at)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            match got {
                -1 => {
                    let Some(k) = self.store.get_key(key_id).await? else {
                        return Ok(None);
                    };
                    self.set_counters(&k, false).await?;
                }
                0 if min > 0 => return Ok(None),
                n => return Ok(Some(n)),
            }
        }
        Err(StoreError::Unavailable("quota counters vanished".into()))
    }

    async fn settle(&self, s: &Settlement) -> Result<(), StoreError> {
        // The reservation was made here, not in the store.
        let in_store = Settlement {
            reserved: 0,
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
}

impl<S: Store> ModelStore for RedisQuota<S> {
    async fn find_model(&self, name: &str) -> Result<Option<Model>, StoreError> {
        self.store.find_model(name).await
    }

    async fn get_model(&self, id: &str) -> Result<Option<Model>, StoreError> {
        self.store.get_model(id).await
    }

    async fn list_models(&self) -> Result<Vec<Model>, StoreError> {
        self.store.list_models().await
    }

    async fn insert_model(&self, model: NewModel) -> Result<Model, StoreError> {
        self.store.insert_model(model).await
    }

    async fn update_model(
        &self,
        id: &str,
        patch: ModelPatch,
        now_ms: i64,
    ) -> Result<Option<Model>, StoreError> {
        self.store.update_model(id, patch, now_ms).await
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        self.store.delete_model(id).await
    }
}

impl<S: Store> ResponseStore for RedisQuota<S> {
    async fn put_response(&self, response: &StoredResponse) -> Result<(), StoreError> {
        self.store.put_response(response).await
    }

    async fn get_response(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        self.store.get_response(id, now_ms).await
    }

    async fn list_responses(
        &self,
        key_id: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<ResponseSummary>, StoreError> {
        self.store.list_responses(key_id, now_ms, limit).await
    }

    async fn delete_response(&self, id: &str) -> Result<bool, StoreError> {
        self.store.delete_response(id).await
    }

    async fn purge_responses(&self, now_ms: i64, limit: u32) -> Result<u64, StoreError> {
        self.store.purge_responses(now_ms, limit).await
    }
}

impl<S: Store> UsageStore for RedisQuota<S> {
    async fn usage_by_day(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        self.store.usage_by_day(query).await
    }
}
