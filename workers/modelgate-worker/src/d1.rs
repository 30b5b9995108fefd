//! The D1 store (keys, models, usage) and the D1 rate limiter, running the
//! shared statements of [`modelgate_sql`]; and the KV cache in front
//! of key lookups.
//!
//! Counters are exact because every step is one D1 statement (reservation,
//! GCRA) or one D1 batch (settlement), and D1 runs statements one at a time
//! on its primary. KV only caches key records, for [`KEY_CACHE_TTL_S`]:
//! never a counter, since KV is eventually consistent.

mod mcp;

use std::cell::Cell;

use modelgate_core::domain::{
    ApiKey, Ask, Grant, KeyPatch, Lease, Model, ModelPatch, NewKey, NewModel, RecordQuery,
    ResponseSummary, Settlement, StoredResponse, UsageQuery, UsageRecord, UsageRow,
};
use modelgate_core::error::StoreError;
use modelgate_core::limiter;
use modelgate_core::ports::{
    Accounting, KeyStore, ModelStore, RateDecision, RateLimiter, ResponseStore, StepAndReserve,
    UsageStore,
};
use modelgate_sql::{self as sql, KeyRow, ModelRow, SqlValue};
use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result, kv::KvStore};

/// How long a key record stays in KV: the longest a revoked, disabled or
/// changed key can still be accepted by another Worker location (KV's
/// minimum TTL; the location that made the change drops its entry at once).
pub(crate) const KEY_CACHE_TTL_S: u64 = 60;

/// D1 + KV.
pub(crate) struct D1Store {
    db: D1Database,
    cache: KvStore,
    trips: RoundTrips,
}

/// Round trips to the bindings since the isolate started: what D1 and KV
/// bill by and what each request waits on, served at `GET /metrics`.
#[derive(Default)]
pub(crate) struct RoundTrips {
    d1: Cell<u64>,
    kv_reads: Cell<u64>,
    kv_writes: Cell<u64>,
}

impl RoundTrips {
    fn count(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }

    /// The counters in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        format!(
            "# HELP {M} Round trips to the Worker's bindings (D1 queries and batches, KV reads and writes) since the isolate started.\n\
             # TYPE {M} counter\n\
             {M}{{binding=\"d1\",op=\"query\"}} {}\n\
             {M}{{binding=\"kv\",op=\"read\"}} {}\n\
             {M}{{binding=\"kv\",op=\"write\"}} {}\n",
            self.d1.get(),
            self.kv_reads.get(),
            self.kv_writes.get(),
            M = "modelgate_binding_round_trips_total",
        )
    }
}

fn err(e: worker::Error) -> StoreError {
    let msg = e.to_string();
    if msg.contains("UNIQUE constraint failed") {
        StoreError::Conflict("A record with that name".into())
    } else {
        StoreError::Unavailable(msg)
    }
}

fn js(args: &[SqlValue]) -> Vec<JsValue> {
    args.iter()
        .map(|a| match a {
            SqlValue::Null => JsValue::NULL,
            // D1 numbers are doubles: every value here (ms, µs, tokens) is
            // well below 2^53.
            SqlValue::Int(i) => JsValue::from_f64(*i as f64),
            SqlValue::Text(t) => JsValue::from_str(t),
        })
        .collect()
}

fn cache_key(hash: &str) -> String {
    format!("key:{hash}")
}

impl D1Store {
    pub(crate) fn new(db: D1Database, cache: KvStore) -> Self {
        Self {
            db,
            cache,
            trips: RoundTrips::default(),
        }
    }

    pub(crate) fn trips(&self) -> &RoundTrips {
        &self.trips
    }

    fn stmt(&self, sql: &str, args: &[SqlValue]) -> Result<D1PreparedStatement, StoreError> {
        self.db.prepare(sql).bind(&js(args)).map_err(err)
    }

    async fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        args: &[SqlValue],
    ) -> Result<Vec<T>, StoreError> {
        RoundTrips::count(&self.trips.d1);
        self.stmt(sql, args)?
            .all()
            .await
            .map_err(err)?
            .results()
            .map_err(err)
    }

    async fn changes(&self, sql: &str, args: &[SqlValue]) -> Result<usize, StoreError> {
        RoundTrips::count(&self.trips.d1);
        let result = self.stmt(sql, args)?.run().await.map_err(err)?;
        Ok(result
            .meta()
            .map_err(err)?
            .and_then(|m| m.changes)
            .unwrap_or(0))
    }

    async fn key_where(&self, column: &str, arg: &str) -> Result<Option<ApiKey>, StoreError> {
        let rows: Vec<KeyRow> = self
            .rows(&sql::select_key(column), &[SqlValue::Text(arg.into())])
            .await?;
        rows.into_iter().next().map(KeyRow::into_key).transpose()
    }

    async fn model_where(&self, column: &str, arg: &str) -> Result<Option<Model>, StoreError> {
        let rows: Vec<ModelRow> = self
            .rows(&sql::select_model(column), &[SqlValue::Text(arg.into())])
            .await?;
        rows.into_iter()
            .next()
            .map(ModelRow::into_model)
            .transpose()
    }

    /// Drop a key's cache entry (after an admin change here).
    async fn forget(&self, key: &ApiKey) {
        RoundTrips::count(&self.trips.kv_writes);
        let _ = self.cache.delete(&cache_key(key.hash.expose())).await;
    }
}

impl KeyStore for D1Store {
    async fn find_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let ck = cache_key(hash);
        // A cache failure is not an outage: fall through to D1. KV holds
        // the D1 row itself, being a read-through cache of it, not a store
        // with records of its own: an entry written before a change to the
        // row's columns fails to parse and is read from D1 again.
        RoundTrips::count(&self.trips.kv_reads);
        if let Ok(Some(row)) = self.cache.get(&ck).json::<KeyRow>().await {
            return row.into_key().map(Some);
        }
        let key = self.key_where("key_hash", hash).await?;
        if let Some(k) = &key
            && let Ok(put) = self.cache.put(
                &ck,
                serde_json::to_string(&KeyRow::from_key(k)).unwrap_or_default(),
            )
        {
            RoundTrips::count(&self.trips.kv_writes);
            let _ = put.expiration_ttl(KEY_CACHE_TTL_S).execute().await;
        }
        Ok(key)
    }

    async fn insert_key(&self, new: NewKey) -> Result<ApiKey, StoreError> {
        self.changes(sql::INSERT_KEY, &sql::insert_key_params(&new.key))
            .await?;
        self.key_where("id", &new.key.id)
            .await?
            .ok_or_else(|| StoreError::Unavailable("inserted key vanished".into()))
    }

    async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.key_where("id", id).await
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<KeyRow> = self.rows(&sql::list_keys(), &[]).await?;
        rows.into_iter().map(KeyRow::into_key).collect()
    }

    async fn update_key(
        &self,
        id: &str,
        patch: KeyPatch,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        let (stmt, args) = sql::key_patch(id, patch, now_ms);
        if self.changes(&stmt, &args).await? == 0 {
            return Ok(None);
        }
        let key = self.key_where("id", id).await?;
        if let Some(k) = &key {
            self.forget(k).await;
        }
        Ok(key)
    }
}

/// What a reservation statement granted (its RETURNING row), if anything.
fn granted(result: Option<&D1Result>) -> Result<Option<Grant>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Granted {
        last_reservation: i64,
        last_money: i64,
    }
    let granted: Vec<Granted> = match result {
        Some(r) => r.results().map_err(err)?,
        None => Vec::new(),
    };
    Ok(granted.first().map(|g| Grant {
        tokens: g.last_reservation,
        money: g.last_money,
    }))
}

impl Accounting for D1Store {
    async fn reserve(&self, lease: &Lease, ask: &Ask) -> Result<Option<Grant>, StoreError> {
        // One batch, one transaction: the reservation and its lease.
        let batch = vec![
            self.stmt(sql::RESERVE, &sql::reserve_params(&lease.key_id, ask))?,
            self.stmt(sql::LEASE, &sql::lease_params(lease))?,
        ];
        RoundTrips::count(&self.trips.d1);
        let results = self.db.batch(batch).await.map_err(err)?;
        granted(results.first())
    }

    async fn settle(&self, s: &Settlement) -> Result<(), StoreError> {
        let (charge, record) = sql::settle_params(s);
        let request_id = [SqlValue::Text(s.usage.request_id.clone())];
        // A batch is one transaction: charged, recorded and the lease ended
        // together or not at all.
        let batch = vec![
            self.stmt(sql::CHARGE, &charge)?,
            self.stmt(sql::RECORD, &record)?,
            self.stmt(sql::END_LEASE, &request_id)?,
        ];
        RoundTrips::count(&self.trips.d1);
        self.db.batch(batch).await.map_err(err)?;
        Ok(())
    }

    async fn leases(&self, expired_by: Option<i64>) -> Result<Vec<Lease>, StoreError> {
        match expired_by {
            Some(t) => self.rows(sql::EXPIRED_LEASES, &[SqlValue::Int(t)]).await,
            None => self.rows(sql::LEASES, &[]).await,
        }
    }
}

impl ModelStore for D1Store {
    async fn find_model(&self, name: &str) -> Result<Option<Model>, StoreError> {
        self.model_where("name", name).await
    }

    async fn get_model(&self, id: &str) -> Result<Option<Model>, StoreError> {
        self.model_where("id", id).await
    }

    async fn list_models(&self) -> Result<Vec<Model>, StoreError> {
        let rows: Vec<ModelRow> = self.rows(&sql::list_models(), &[]).await?;
        rows.into_iter().map(ModelRow::into_model).collect()
    }

    async fn insert_model(&self, new: NewModel) -> Result<Model, StoreError> {
        let m = new.model;
        self.changes(sql::INSERT_MODEL, &sql::insert_model_params(&m))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => StoreError::Conflict(format!("Model '{}'", m.name)),
                other => other,
            })?;
        self.model_where("id", &m.id)
            .await?
            .ok_or_else(|| StoreError::Unavailable("inserted model vanished".into()))
    }

    async fn update_model(
        &self,
        id: &str,
        patch: ModelPatch,
        now_ms: i64,
    ) -> Result<Option<Model>, StoreError> {
        let (stmt, args) = sql::model_patch(id, patch, now_ms);
        if self.changes(&stmt, &args).await? == 0 {
            return Ok(None);
        }
        self.model_where("id", id).await
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .changes(sql::DELETE_MODEL, &[SqlValue::Text(id.into())])
            .await?
            > 0)
    }
}

impl ResponseStore for D1Store {
    async fn put_response(&self, response: &StoredResponse) -> Result<(), StoreError> {
        self.changes(sql::PUT_RESPONSE, &sql::response_params(response))
            .await
            .map(drop)
    }

    async fn get_response(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let args = sql::get_response_params(id, now_ms);
        Ok(self.rows(sql::GET_RESPONSE, &args).await?.pop())
    }

    async fn list_responses(
        &self,
        key_id: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<ResponseSummary>, StoreError> {
        let args = sql::list_responses_params(key_id, now_ms, limit);
        self.rows(sql::LIST_RESPONSES, &args).await
    }

    async fn delete_response(&self, id: &str) -> Result<bool, StoreError> {
        let args = [SqlValue::Text(id.into())];
        Ok(self.changes(sql::DELETE_RESPONSE, &args).await? > 0)
    }

    async fn purge_responses(&self, now_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let args = sql::purge_responses_params(now_ms, limit);
        let gone = self.changes(sql::PURGE_RESPONSES, &args).await?;
        Ok(u64::try_from(gone).unwrap_or(0))
    }
}

impl UsageStore for D1Store {
    async fn usage_by_day(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        self.rows(sql::USAGE_BY_DAY, &sql::usage_params(q)).await
    }

    async fn usage_records(&self, q: &RecordQuery) -> Result<Vec<UsageRecord>, StoreError> {
        let rows: Vec<sql::RecordRow> = self
            .rows(sql::USAGE_RECORDS, &sql::records_params(q))
            .await?;
        Ok(rows.into_iter().map(sql::RecordRow::into_record).collect())
    }
}

#[derive(serde::Deserialize)]
struct Tat {
    tat: i64,
}

impl D1Store {
    /// One GCRA step taking `cost` of `limit` per minute on `key`.
    async fn rate_step(
        &self,
        key: String,
        limit: u32,
        cost: i64,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        let (args, now_us) = sql::rate_step_params(&key, limit, cost, now_ms);
        RoundTrips::count(&self.trips.d1);
        let stepped: Option<Tat> = self
            .stmt(sql::RATE_STEP, &args)?
            .first(None)
            .await
            .map_err(err)?;
        let stored = match stepped {
            Some(_) => None,
            None => self
                .rows::<Tat>(sql::RATE_TAT, &args[..1])
                .await?
                .into_iter()
                .next()
                .map(|t| t.tat),
        };
        Ok(limiter::store_decision(
            stepped.map(|t| t.tat),
            stored,
            now_us,
            limit,
            cost,
        ))
    }
}

/// One request's RPM step and, if it is allowed, the reservation of its
/// ask with the lease: one batch, so one round trip and one transaction.
impl StepAndReserve for D1Store {
    async fn step_and_reserve(
        &self,
        subject: &str,
        per_minute: u32,
        now_ms: i64,
        lease: &Lease,
        ask: &Ask,
    ) -> Result<(RateDecision, Option<Grant>), StoreError> {
        let (args, now_us) = sql::rate_step_params(subject, per_minute, 1, now_ms);
        let batch = vec![
            self.stmt(sql::RATE_STEP, &args)?,
            self.stmt(
                sql::RESERVE_IF_STEPPED,
                &sql::reserve_params(&lease.key_id, ask),
            )?,
            self.stmt(sql::LEASE, &sql::lease_params(lease))?,
            // The stored TAT, which a refusal's figures come from.
            self.stmt(sql::RATE_TAT, &args[..1])?,
        ];
        RoundTrips::count(&self.trips.d1);
        let results = self.db.batch(batch).await.map_err(err)?;
        let tat = |i: usize| -> Result<Option<i64>, StoreError> {
            let rows: Vec<Tat> = match results.get(i) {
                Some(r) => r.results().map_err(err)?,
                None => Vec::new(),
            };
            Ok(rows.first().map(|t| t.tat))
        };
        let stepped = tat(0)?;
        let stored = if stepped.is_some() { None } else { tat(3)? };
        let decision = limiter::store_decision(stepped, stored, now_us, per_minute, 1);
        let grant = if decision.allowed {
            granted(results.get(1))?
        } else {
            None
        };
        Ok((decision, grant))
    }
}

impl RateLimiter for D1Store {
    async fn acquire(
        &self,
        subject: &str,
        per_minute: u32,
        cost: i64,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        self.rate_step(subject.to_owned(), per_minute, cost, now_ms)
            .await
    }

    async fn refund(
        &self,
        subject: &str,
        per_minute: u32,
        units: i64,
        _now_ms: i64,
    ) -> Result<(), StoreError> {
        let args = sql::rate_refund_params(subject, per_minute, units);
        self.changes(sql::RATE_REFUND, &args).await.map(drop)
    }
}
