//! Keys, and their accounting: reservation and settlement each one
//! statement (`modelgate_sql::postgres`).

use modelgate_core::domain::{ApiKey, Ask, Grant, KeyPatch, Lease, NewKey, Settlement};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{Accounting, KeyStore};
use modelgate_sql::postgres::{self as pg, numbered};
use modelgate_sql::{self as sql, KeyRow, SqlValue};

use crate::{PgStore, pg_err};

impl PgStore {
    async fn key_where(&self, column: &str, arg: &str) -> Result<Option<ApiKey>, StoreError> {
        let args = [SqlValue::Text(arg.to_owned())];
        let sql = numbered(&sql::select_key(column));
        Ok(self
            .read_all(&sql, &args, KeyRow::read, KeyRow::into_key)
            .await?
            .pop())
    }
}

impl KeyStore for PgStore {
    async fn find_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.key_where("key_hash", hash).await
    }

    async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.key_where("id", id).await
    }

    async fn insert_key(&self, new: NewKey) -> Result<ApiKey, StoreError> {
        let args = sql::insert_key_params(&new.key);
        self.execute(&numbered(sql::INSERT_KEY), &args).await?;
        self.key_where("id", &new.key.id)
            .await?
            .ok_or_else(|| StoreError::Unavailable("inserted key vanished".into()))
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let sql = numbered(&sql::list_keys());
        self.read_all(&sql, &[], KeyRow::read, KeyRow::into_key)
            .await
    }

    async fn update_key(
        &self,
        id: &str,
        patch: KeyPatch,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        let (stmt, args) = sql::key_patch(id, patch, now_ms);
        if self.execute(&numbered(&stmt), &args).await? == 0 {
            return Ok(None);
        }
        self.key_where("id", id).await
    }
}

impl Accounting for PgStore {
    async fn reserve(&self, lease: &Lease, ask: &Ask) -> Result<Option<Grant>, StoreError> {
        let rows = self
            .query(pg::RESERVE, &pg::lease_reserve_params(lease, ask))
            .await?;
        rows.first()
            .map(|r| {
                Ok(Grant {
                    tokens: r.try_get(0).map_err(pg_err)?,
                    money: r.try_get(1).map_err(pg_err)?,
                })
            })
            .transpose()
    }

    async fn settle(&self, s: &Settlement) -> Result<(), StoreError> {
        self.execute(pg::SETTLE, &pg::settlement_params(s))
            .await
            .map(drop)
    }

    async fn leases(&self, expired_by: Option<i64>) -> Result<Vec<Lease>, StoreError> {
        let (stmt, args) = match expired_by {
            Some(t) => (sql::EXPIRED_LEASES, vec![SqlValue::Int(t)]),
            None => (sql::LEASES, vec![]),
        };
        self.read_all(&numbered(stmt), &args, sql::lease_row, Ok)
            .await
    }
}
