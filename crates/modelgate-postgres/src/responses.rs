//! Stored Responses.

use modelgate_core::domain::{ResponseSummary, StoredResponse};
use modelgate_core::error::StoreError;
use modelgate_core::ports::ResponseStore;
use modelgate_sql::postgres::{self as pg, numbered};
use modelgate_sql::{self as sql, SqlValue};

use crate::PgStore;

impl ResponseStore for PgStore {
    async fn put_response(&self, response: &StoredResponse) -> Result<(), StoreError> {
        self.execute(pg::PUT_RESPONSE, &sql::response_params(response))
            .await
            .map(drop)
    }

    async fn get_response(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let args = sql::get_response_params(id, now_ms);
        let sql = numbered(sql::GET_RESPONSE);
        Ok(self
            .read_all(&sql, &args, sql::response_row, Ok)
            .await?
            .pop())
    }

    async fn list_responses(
        &self,
        key_id: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<ResponseSummary>, StoreError> {
        let args = sql::list_responses_params(key_id, now_ms, limit);
        self.read_all(&numbered(sql::LIST_RESPONSES), &args, sql::summary_row, Ok)
            .await
    }

    async fn delete_response(&self, id: &str) -> Result<bool, StoreError> {
        let args = [SqlValue::Text(id.to_owned())];
        Ok(self.execute(&numbered(sql::DELETE_RESPONSE), &args).await? > 0)
    }

    async fn purge_responses(&self, now_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let args = sql::purge_responses_params(now_ms, limit);
        self.execute(&numbered(sql::PURGE_RESPONSES), &args).await
    }
}
