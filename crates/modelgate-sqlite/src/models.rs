//! Models and usage reports, with the shared statements of
//! [`modelgate_sql`].

use modelgate_core::domain::{
    Model, ModelPatch, NewModel, RecordQuery, UsageQuery, UsageRecord, UsageRow,
};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{ModelStore, UsageStore};
use modelgate_sql::{self as sql, ModelRow};
use rusqlite::Row;

use crate::{Cols, SqliteStore};

fn model_row(r: &Row<'_>) -> rusqlite::Result<ModelRow> {
    ModelRow::read(&Cols(r))
}

fn usage_row(r: &Row<'_>) -> rusqlite::Result<UsageRow> {
    sql::usage_row(&Cols(r))
}

/// A unique-name failure names the model.
fn named_conflict(name: &str) -> impl Fn(StoreError) -> StoreError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!("Model '{name}'")),
        other => other,
    }
}

impl SqliteStore {
    fn model_where(&self, column: &str, arg: &str) -> Result<Option<Model>, StoreError> {
        self.query_one(
            &sql::select_model(column),
            arg,
            model_row,
            ModelRow::into_model,
        )
    }
}

impl ModelStore for SqliteStore {
    async fn find_model(&self, name: &str) -> Result<Option<Model>, StoreError> {
        self.model_where("name", name)
    }

    async fn get_model(&self, id: &str) -> Result<Option<Model>, StoreError> {
        self.model_where("id", id)
    }

    async fn list_models(&self) -> Result<Vec<Model>, StoreError> {
        self.query_all(&sql::list_models(), &[], model_row, ModelRow::into_model)
    }

    async fn insert_model(&self, new: NewModel) -> Result<Model, StoreError> {
        let m = new.model;
        self.execute(sql::INSERT_MODEL, &sql::insert_model_params(&m))
            .map_err(named_conflict(&m.name))?;
        self.model_where("id", &m.id)?
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
        if self.execute(&stmt, &args).map_err(named_conflict(&name))? == 0 {
            return Ok(None);
        }
        self.model_where("id", id)
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute(sql::DELETE_MODEL, &[sql::SqlValue::Text(id.to_owned())])? > 0)
    }
}

impl UsageStore for SqliteStore {
    async fn usage_by_day(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        self.query_all(sql::USAGE_BY_DAY, &sql::usage_params(q), usage_row, Ok)
    }

    async fn usage_records(&self, q: &RecordQuery) -> Result<Vec<UsageRecord>, StoreError> {
        let params = sql::records_params(q);
        let read = |r: &Row<'_>| sql::RecordRow::read(&Cols(r));
        let into = |r: sql::RecordRow| Ok(r.into_record());
        self.query_all(sql::USAGE_RECORDS, &params, read, into)
    }
}
