//! Models, and usage reports.

use modelgate_core::BackendKind;
use modelgate_core::domain::{Model, ModelPatch, NewModel, UsageQuery, UsageRow};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{ModelStore, UsageStore};
use rusqlite::{Row, ToSql, params};

use crate::{SqliteStore, list_from, list_to, store_err};

const MODEL_COLUMNS: &str = "id, name, backend, base_url, fallback_urls, upstream_model, api_key, enabled, stream_usage, created_at, updated_at";

fn model_from_row(r: &Row<'_>) -> rusqlite::Result<(Model, String, String)> {
    let m = Model {
        id: r.get(0)?,
        name: r.get(1)?,
        backend: BackendKind::Openai,
        base_url: r.get(3)?,
        fallback_urls: vec![],
        upstream_model: r.get(5)?,
        api_key: r.get(6)?,
        enabled: r.get(7)?,
        stream_usage: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    };
    Ok((m, r.get(2)?, r.get(4)?))
}

fn finish_model((mut m, backend, fallbacks): (Model, String, String)) -> Result<Model, StoreError> {
    m.backend = BackendKind::parse(&backend)
        .ok_or_else(|| StoreError::Corrupt(format!("backend {backend}")))?;
    m.fallback_urls = list_from(fallbacks)?;
    Ok(m)
}

impl SqliteStore {
    fn model_where(&self, clause: &str, arg: &str) -> Result<Option<Model>, StoreError> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE {clause} = ?1");
        self.query_one(&sql, arg, model_from_row, finish_model)
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
        let conn = self.conn()?;
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY name");
        let mut stmt = conn.prepare_cached(&sql).map_err(store_err)?;
        let rows = stmt.query_map([], model_from_row).map_err(store_err)?;
        rows.map(|r| r.map_err(store_err).and_then(finish_model))
            .collect()
    }

    async fn insert_model(&self, new: NewModel) -> Result<Model, StoreError> {
        let m = new.model;
        self.conn()?
            .execute(
                "INSERT INTO models (id, name, backend, base_url, fallback_urls, upstream_model, api_key,
                    enabled, stream_usage, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
                params![
                    m.id,
                    m.name,
                    m.backend.as_str(),
                    m.base_url,
                    list_to(&m.fallback_urls),
                    m.upstream_model,
                    m.api_key,
                    m.enabled,
                    m.stream_usage,
                    m.created_at,
                ],
            )
            .map_err(|e| match store_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("Model '{}'", m.name)),
                other => other,
            })?;
        self.model_where("id", &m.id)?
            .ok_or_else(|| StoreError::Unavailable("inserted model vanished".into()))
    }

    async fn update_model(
        &self,
        id: &str,
        patch: ModelPatch,
        now_ms: i64,
    ) -> Result<Option<Model>, StoreError> {
        let mut sets: Vec<&str> = vec!["updated_at = ?"];
        let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(now_ms)];
        let mut set = |col: &'static str, v: Box<dyn ToSql>| {
            sets.push(col);
            args.push(v);
        };
        if let Some(v) = patch.name {
            set("name = ?", Box::new(v));
        }
        if let Some(v) = patch.backend {
            set("backend = ?", Box::new(v.as_str()));
        }
        if let Some(v) = patch.base_url {
            set("base_url = ?", Box::new(v.trim_end_matches('/').to_owned()));
        }
        if let Some(v) = patch.fallback_urls {
            set("fallback_urls = ?", Box::new(list_to(&v)));
        }
        if let Some(v) = patch.upstream_model {
            set("upstream_model = ?", Box::new(v));
        }
        if let Some(v) = patch.api_key {
            set("api_key = ?", Box::new(v.filter(|k| !k.is_empty())));
        }
        if let Some(v) = patch.enabled {
            set("enabled = ?", Box::new(v));
        }
        if let Some(v) = patch.stream_usage {
            set("stream_usage = ?", Box::new(v));
        }
        let changed = self
            .update_row("models", &sets, args, id)
            .map_err(|e| match e {
                StoreError::Conflict(_) => StoreError::Conflict("A model with that name".into()),
                other => other,
            })?;
        if changed == 0 {
            return Ok(None);
        }
        self.model_where("id", id)
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute("DELETE FROM models WHERE id = ?1", [id])
            .map_err(store_err)?;
        Ok(n > 0)
    }
}

impl UsageStore for SqliteStore {
    async fn usage_by_day(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT strftime('%Y-%m-%d', created_at / 1000, 'unixepoch') AS day, key_id, model,
                    COUNT(*), SUM(prompt_tokens), SUM(completion_tokens),
                    SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END)
                 FROM usage_records
                 WHERE created_at >= ?1 AND created_at < ?2
                   AND (?3 IS NULL OR key_id = ?3) AND (?4 IS NULL OR model = ?4)
                 GROUP BY day, key_id, model
                 ORDER BY day, key_id, model",
            )
            .map_err(store_err)?;
        let rows = stmt
            .query_map(params![q.from_ms, q.to_ms, q.key_id, q.model], |r| {
                Ok(UsageRow {
                    day: r.get(0)?,
                    key_id: r.get(1)?,
                    model: r.get(2)?,
                    requests: r.get(3)?,
                    prompt_tokens: r.get(4)?,
                    completion_tokens: r.get(5)?,
                    errors: r.get(6)?,
                })
            })
            .map_err(store_err)?;
        rows.map(|r| r.map_err(store_err)).collect()
    }
}
