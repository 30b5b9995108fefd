//! Keys: lookup, admin changes, atomic quota reservation and settlement.

use modelgate_core::domain::{ApiKey, KeyPatch, KeyStatus, NewKey, Settlement};
use modelgate_core::error::StoreError;
use modelgate_core::ports::KeyStore;
use rusqlite::{OptionalExtension, Row, ToSql, params};

use crate::{SqliteStore, list_from, list_to, store_err};

const KEY_COLUMNS: &str = "id, name, prefix, key_hash, status, admin, rpm, quota, quota_used, quota_reserved, \
     allowed_models, allowed_ips, default_model, expires_at, created_at, updated_at, last_used_at";

/// Reserve between ?2 (min) and ?3 (max) tokens in one statement. SQLite
/// evaluates every SET expression on the old row, so `last_reservation`
/// records exactly what this statement added, and RETURNING hands it back.
const RESERVE_SQL: &str = "UPDATE api_keys SET
        quota_reserved = quota_reserved + CASE WHEN quota IS NULL THEN ?3
            ELSE MIN(?3, quota - quota_used - quota_reserved) END,
        last_reservation = CASE WHEN quota IS NULL THEN ?3
            ELSE MIN(?3, quota - quota_used - quota_reserved) END
    WHERE id = ?1 AND (quota IS NULL OR quota - quota_used - quota_reserved >= ?2)
    RETURNING last_reservation";

/// Charge a settlement unless its usage record already exists (settling is
/// idempotent per request id); the record is inserted after it.
const CHARGE_SQL: &str = "UPDATE api_keys SET
        quota_reserved = MAX(quota_reserved - ?2, 0),
        quota_used = quota_used + ?3,
        last_used_at = ?4
    WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM usage_records WHERE request_id = ?5)";

const RECORD_SQL: &str = "INSERT OR IGNORE INTO usage_records (request_id, key_id, model, backend,
        prompt_tokens, completion_tokens, status, usage_reported, stream, error, latency_ms, created_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<(ApiKey, String, String)> {
    let status: String = r.get(4)?;
    let key = ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        prefix: r.get(2)?,
        hash: r.get(3)?,
        status: KeyStatus::parse(&status).unwrap_or(KeyStatus::Disabled),
        admin: r.get(5)?,
        rpm: r.get(6)?,
        quota: r.get(7)?,
        quota_used: r.get(8)?,
        quota_reserved: r.get(9)?,
        allowed_models: vec![],
        allowed_ips: vec![],
        default_model: r.get(12)?,
        expires_at: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        last_used_at: r.get(16)?,
    };
    Ok((key, r.get(10)?, r.get(11)?))
}

fn finish_key((mut key, models, ips): (ApiKey, String, String)) -> Result<ApiKey, StoreError> {
    key.allowed_models = list_from(models)?;
    key.allowed_ips = list_from(ips)?;
    Ok(key)
}

impl SqliteStore {
    fn key_where(&self, clause: &str, arg: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE {clause} = ?1");
        self.query_one(&sql, arg, key_from_row, finish_key)
    }
}

impl KeyStore for SqliteStore {
    async fn find_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.key_where("key_hash", hash)
    }

    async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.key_where("id", id)
    }

    async fn insert_key(&self, new: NewKey) -> Result<ApiKey, StoreError> {
        let k = new.key;
        self.conn()?
            .execute(
                "INSERT INTO api_keys (id, name, prefix, key_hash, status, admin, rpm, quota, quota_used,
                    quota_reserved, allowed_models, allowed_ips, default_model, expires_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 0, ?9, ?10, ?11, ?12, ?13, ?13)",
                params![
                    k.id,
                    k.name,
                    k.prefix,
                    k.hash,
                    k.status.as_str(),
                    k.admin,
                    k.rpm,
                    k.quota,
                    list_to(&k.allowed_models),
                    list_to(&k.allowed_ips),
                    k.default_model,
                    k.expires_at,
                    k.created_at,
                ],
            )
            .map_err(store_err)?;
        self.key_where("id", &k.id)?
            .ok_or_else(|| StoreError::Unavailable("inserted key vanished".into()))
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let conn = self.conn()?;
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id");
        let mut stmt = conn.prepare_cached(&sql).map_err(store_err)?;
        let rows = stmt.query_map([], key_from_row).map_err(store_err)?;
        rows.map(|r| r.map_err(store_err).and_then(finish_key))
            .collect()
    }

    async fn update_key(
        &self,
        id: &str,
        patch: KeyPatch,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut sets: Vec<&str> = vec!["updated_at = ?"];
        let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(now_ms)];
        let mut set = |col: &'static str, v: Box<dyn ToSql>| {
            sets.push(col);
            args.push(v);
        };
        if let Some(v) = patch.name {
            set("name = ?", Box::new(v));
        }
        if let Some(v) = patch.status {
            set("status = ?", Box::new(v.as_str()));
        }
        if let Some(v) = patch.rpm {
            set("rpm = ?", Box::new(v));
        }
        if let Some(v) = patch.quota {
            set("quota = ?", Box::new(v));
        }
        if let Some(v) = patch.quota_used {
            set("quota_used = ?", Box::new(v));
        }
        if let Some(v) = patch.allowed_models {
            set("allowed_models = ?", Box::new(list_to(&v)));
        }
        if let Some(v) = patch.allowed_ips {
            set("allowed_ips = ?", Box::new(list_to(&v)));
        }
        if let Some(v) = patch.default_model {
            set("default_model = ?", Box::new(v));
        }
        if let Some(v) = patch.expires_at {
            set("expires_at = ?", Box::new(v));
        }
        let changed = self.update_row("api_keys", &sets, args, id)?;
        if changed == 0 {
            return Ok(None);
        }
        self.key_where("id", id)
    }

    async fn reserve_quota(
        &self,
        key_id: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(RESERVE_SQL).map_err(store_err)?;
        stmt.query_row(params![key_id, min, max], |r| r.get(0))
            .optional()
            .map_err(store_err)
    }

    async fn settle(&self, s: &Settlement) -> Result<(), StoreError> {
        let u = &s.usage;
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(store_err)?;
        tx.prepare_cached(CHARGE_SQL)
            .map_err(store_err)?
            .execute(params![
                s.key_id,
                s.reserved,
                u.total_tokens(),
                u.created_at,
                u.request_id
            ])
            .map_err(store_err)?;
        tx.prepare_cached(RECORD_SQL)
            .map_err(store_err)?
            .execute(params![
                u.request_id,
                u.key_id,
                u.model,
                u.backend,
                u.prompt_tokens,
                u.completion_tokens,
                u.status,
                u.usage_reported,
                u.stream,
                u.error,
                u.latency_ms,
                u.created_at,
            ])
            .map_err(store_err)?;
        tx.commit().map_err(store_err)
    }
}
