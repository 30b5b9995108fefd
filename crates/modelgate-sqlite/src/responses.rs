//! Stored Responses, with the shared statements of [`modelgate_sql`].

use modelgate_core::domain::{ResponseSummary, StoredResponse};
use modelgate_core::error::StoreError;
use modelgate_core::ports::ResponseStore;
use modelgate_sql::{self as sql, SqlValue};
use rusqlite::Row;

use crate::job::Work;
use crate::{Cols, SqliteStore};

fn response_row(r: &Row<'_>) -> rusqlite::Result<StoredResponse> {
    sql::response_row(&Cols(r))
}

impl ResponseStore for SqliteStore {
    /// Group-committed with the reservations and settlements: on the
    /// connection for reads it took the write lock from them (and, on a
    /// runtime thread, waited out theirs).
    async fn put_response(&self, response: &StoredResponse) -> Result<(), StoreError> {
        let work = Work::Execute(sql::PUT_RESPONSE, sql::response_params(response));
        self.writer.submit(work).await.map(drop)
    }

    async fn get_response(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let args = sql::get_response_params(id, now_ms);
        let mut found = self.query_all(sql::GET_RESPONSE, &args, response_row, Ok)?;
        Ok(found.pop())
    }

    async fn list_responses(
        &self,
        key_id: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<ResponseSummary>, StoreError> {
        let args = sql::list_responses_params(key_id, now_ms, limit);
        let row = |r: &Row<'_>| sql::summary_row(&Cols(r));
        self.query_all(sql::LIST_RESPONSES, &args, row, Ok)
    }

    async fn delete_response(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute(sql::DELETE_RESPONSE, &[SqlValue::Text(id.to_owned())])? > 0)
    }

    async fn purge_responses(&self, now_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let args = sql::purge_responses_params(now_ms, limit);
        let gone = self.execute(sql::PURGE_RESPONSES, &args)?;
        Ok(u64::try_from(gone).unwrap_or(0))
    }
}
