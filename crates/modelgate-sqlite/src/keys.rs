//! Keys: lookup, admin changes, atomic quota reservation and settlement,
//! with the shared statements of [`modelgate_sql`].

use modelgate_core::domain::{ApiKey, Ask, Grant, KeyPatch, Lease, NewKey, Settlement};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{Accounting, KeyStore};
use modelgate_sql::{self as sql, KeyRow, SqlValue};
use rusqlite::Row;

use crate::job::Work;
use crate::{Cols, SqliteStore};

/// Read a row of [`sql::KEY_COLUMNS`].
pub(crate) fn key_row(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    KeyRow::read(&Cols(r))
}

impl SqliteStore {
    fn key_where(&self, column: &str, arg: &str) -> Result<Option<ApiKey>, StoreError> {
        self.query_one(&sql::select_key(column), arg, key_row, KeyRow::into_key)
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
        self.execute(sql::INSERT_KEY, &sql::insert_key_params(&new.key))?;
        self.key_where("id", &new.key.id)?
            .ok_or_else(|| StoreError::Unavailable("inserted key vanished".into()))
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.query_all(&sql::list_keys(), &[], key_row, KeyRow::into_key)
    }

    async fn update_key(
        &self,
        id: &str,
        patch: KeyPatch,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        let (stmt, args) = sql::key_patch(id, patch, now_ms);
        if self.execute(&stmt, &args)? == 0 {
            return Ok(None);
        }
        self.key_where("id", id)
    }
}

impl Accounting for SqliteStore {
    async fn reserve(&self, lease: &Lease, ask: &Ask) -> Result<Option<Grant>, StoreError> {
        let work = Work::Reserve(
            sql::reserve_params(&lease.key_id, ask),
            sql::lease_params(lease),
        );
        self.writer.submit(work).await
    }

    async fn settle(&self, s: &Settlement) -> Result<(), StoreError> {
        let (charge, record) = sql::settle_params(s);
        let request_id = s.usage.request_id.clone();
        self.writer
            .submit(Work::Settle(charge, record, request_id))
            .await
            .map(drop)
    }

    async fn leases(&self, expired_by: Option<i64>) -> Result<Vec<Lease>, StoreError> {
        let (stmt, args) = match expired_by {
            Some(t) => (sql::EXPIRED_LEASES, vec![SqlValue::Int(t)]),
            None => (sql::LEASES, vec![]),
        };
        self.query_all(stmt, &args, |r| sql::lease_row(&Cols(r)), Ok)
    }
}
