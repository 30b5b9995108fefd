//! Models and usage reports.

use modelgate_core::domain::{
    Model, ModelPatch, NewModel, RecordQuery, UsageQuery, UsageRecord, UsageRow,
};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{ModelStore, UsageStore};
use modelgate_sql::postgres::{self as pg, numbered};
use modelgate_sql::{self as sql, ModelRow, SqlValue};

use crate::PgStore;

/// A unique-name failure names the model.
fn named_conflict(name: &str) -> impl Fn(StoreError) -> StoreError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!("Model '{name}'")),
        other => other,
    }
}

impl PgStore {
    async fn model_where(&self, column: &str, arg: &str) -> Result<Option<Model>, StoreError> {
        let args = [SqlValue::Text(arg.to_owned())];
        let sql = numbered(&sql::select_model(column));
        Ok(self
            .read_all(&sql, &args, ModelRow::read, ModelRow::into_model)
            .await?
            .pop())
    }
}

impl ModelStore for PgStore {
    async fn find_model(&self, name: &str) -> Result<Option<Model>, StoreError> {
        self.model_where("name", name).await
    }

    async fn get_model(&self, id: &str) -> Result<Option<Model>, StoreError> {
        self.model_where("id", id).await
    }

    async fn list_models(&self) -> Result<Vec<Model>, StoreError> {
        let sql = numbered(&sql::list_models());
        self.read_all(&sql, &[], ModelRow::read, ModelRow::into_model)
            .await
    }

    async fn insert_model(&self, new: NewModel) -> Result<Model, StoreError> {
        let m = new.model;
        self.execute(&numbered(sql::INSERT_MODEL), &sql::insert_model_params(&m))
            .await
            .map_err(named_conflict(&m.name))?;
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
        let name = patch.name.clone().unwrap_or_default();
        let (stmt, args) = sql::model_patch(id, patch, now_ms);
        let changed = self
            .execute(&numbered(&stmt), &args)
            .await
            .map_err(named_conflict(&name))?;
        if changed == 0 {
            return Ok(None);
        }
        self.model_where("id", id).await
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        let args = [SqlValue::Text(id.to_owned())];
        Ok(self.execute(&numbered(sql::DELETE_MODEL), &args).await? > 0)
    }
}

impl UsageStore for PgStore {
    async fn usage_by_day(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        self.read_all(pg::USAGE_BY_DAY, &sql::usage_params(q), sql::usage_row, Ok)
            .await
    }

    async fn usage_records(&self, q: &RecordQuery) -> Result<Vec<UsageRecord>, StoreError> {
        let params = sql::records_params(q);
        let into = |r: sql::RecordRow| Ok(r.into_record());
        self.read_all(pg::USAGE_RECORDS, &params, sql::RecordRow::read, into)
            .await
    }
}
