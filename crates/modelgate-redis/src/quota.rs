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
//! - Redis unreachable: reservations fail (the gateway answers 503) and
//!   settlement reports the error so the gateway retries it; never an
//!   unlimited gateway.

use modelgate_core::domain::{
    ApiKey, KeyPatch, Lease, Model, ModelPatch, NewKey, NewModel, Settlement, UsageQuery, UsageRow,
};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{KeyStore, ModelStore, Store, UsageStore};
use redis::Script;

use crate::{Connection, unavailable};

/// Reserve between ARGV[1] (min) and ARGV[2] (max) tokens of KEYS[1].
/// Returns -1 when the hash is missing (rebuild it, then retry), else the
/// tokens reserved (0: fewer than min were left).
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

/// Once per request id (marker KEYS[2]): release -ARGV[1] reserved tokens
/// and charge ARGV[2] used ones on KEYS[1], when it exists.
const SETTLE: &str = r"
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
                .arg(min)
                .arg(max)
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
            .arg(-s.reserved)
            .arg(s.charge())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Reservations live in Redis counters here, without leases yet: a
    /// request whose process dies holds its reservation until an admin
    /// resets the key's counters.
    async fn leases(&self, _expired_by: Option<i64>) -> Result<Vec<Lease>, StoreError> {
        Ok(Vec::new())
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

impl<S: Store> UsageStore for RedisQuota<S> {
    async fn usage_by_day(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        self.store.usage_by_day(query).await
    }
}
