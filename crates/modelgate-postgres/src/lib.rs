//! The PostgreSQL store: keys, counters, models, usage, stored Responses
//! and the rate limiter, for native replicas sharing one database.
//!
//! # Layout
//! - `lib.rs`: the pool, migrations, binding and reading values.
//! - `keys.rs`: keys and their accounting (reservation, settlement, leases).
//! - `models.rs`: models and usage reports.
//! - `responses.rs`: stored Responses.
//! - `limiter.rs`: GCRA as one statement.
//!
//! Every counter moves in one statement (`modelgate_sql::postgres`), so
//! replicas stay exact with nothing but this database: no read is followed
//! by a write. All IO is the pool's connections; each has a connect and a
//! statement timeout, and a pool that cannot hand one out in time answers
//! `Unavailable` (the gateway's 503), never an unlimited gateway.

mod keys;
mod limiter;
mod mcp;
mod models;
mod responses;

use std::error::Error;
use std::time::Duration;

use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use modelgate_core::error::StoreError;
use modelgate_sql::{Columns, SqlValue};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{NoTls, Row};

/// The migrations, in order (the files of `migrations/postgres/`).
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_anthropic_backend.sql",
        include_str!("../../../migrations/postgres/0002_anthropic_backend.sql"),
    ),
    (
        "0003_mcp_servers.sql",
        include_str!("../../../migrations/postgres/0003_mcp_servers.sql"),
    ),
    (
        "0004_allowed_tools.sql",
        include_str!("../../../migrations/postgres/0004_allowed_tools.sql"),
    ),
    (
        "0005_usage_arguments.sql",
        include_str!("../../../migrations/postgres/0005_usage_arguments.sql"),
    ),
];

/// Serialises migrations across replicas starting at once.
const MIGRATION_LOCK: i64 = 0x6d67_6d69_6772;

/// How long a connection, a statement or a wait for the pool may take.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Connections in the pool.
    pub pool_size: usize,
    /// Connecting, and waiting for a free connection.
    pub connect_timeout: Duration,
    /// Any one statement (PostgreSQL's `statement_timeout`).
    pub statement_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// A PostgreSQL-backed store (and rate limiter).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password.
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// A pool on the database at `url` (`postgres://user:pass@host/db`);
    /// connects on first use.
    pub fn new(url: &str, opts: Options) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(opts.connect_timeout);
        }
        let timeout_ms = opts.statement_timeout.as_millis();
        // Notices ("already exists, skipping") are not the operator's news.
        config.options(format!(
            "-c statement_timeout={timeout_ms} -c client_min_messages=warning"
        ));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size)
            .wait_timeout(Some(opts.connect_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("database pool: {e}")))?;
        Ok(Self { pool })
    }

    /// [`Self::new`], then apply the migrations not applied yet.
    pub async fn open(url: &str, opts: Options) -> Result<Self, StoreError> {
        let store = Self::new(url, opts)?;
        store.migrate().await?;
        Ok(store)
    }

    /// Apply the migrations not applied yet, each in a transaction, one
    /// replica at a time; the names applied.
    pub async fn migrate(&self) -> Result<Vec<&'static str>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS modelgate_migrations (
                name TEXT PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(pg_err)?;
        let mut applied = Vec::new();
        for (name, sql) in MIGRATIONS {
            let done = tx
                .query_opt(
                    "SELECT 1 FROM modelgate_migrations WHERE name = $1",
                    &[name],
                )
                .await
                .map_err(pg_err)?;
            if done.is_none() {
                tx.batch_execute(sql).await.map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO modelgate_migrations (name) VALUES ($1)",
                    &[name],
                )
                .await
                .map_err(pg_err)?;
                applied.push(*name);
            }
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(applied)
    }

    async fn conn(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("database: {}", chain(&e))))
    }

    /// Run `sql` (prepared once per connection); the rows it returns.
    pub(crate) async fn query(&self, sql: &str, args: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await.map_err(pg_err)?;
        let bound = bind(args);
        conn.query(&stmt, &refs(&bound)).await.map_err(pg_err)
    }

    /// Run `sql`; how many rows it changed.
    pub(crate) async fn execute(&self, sql: &str, args: &[SqlValue]) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await.map_err(pg_err)?;
        let bound = bind(args);
        conn.execute(&stmt, &refs(&bound)).await.map_err(pg_err)
    }

    /// The rows of `sql`, each read by `read` and made a record by `into`.
    pub(crate) async fn read_all<R, T>(
        &self,
        sql: &str,
        args: &[SqlValue],
        read: impl Fn(&Cols) -> Result<R, tokio_postgres::Error>,
        into: impl Fn(R) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, args)
            .await?
            .into_iter()
            .map(|row| into(read(&Cols(row)).map_err(pg_err)?))
            .collect()
    }
}

/// Map a PostgreSQL error to the store error the gateway understands. The
/// text names no host or password (the driver's errors carry neither).
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict("A record with that name".into())
        }
        _ => StoreError::Unavailable(format!("database: {}", chain(&e))),
    }
}

/// An error with its causes (the driver's own text is "db error" without
/// the server's message).
fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// A core value bound to whatever type PostgreSQL inferred for its
/// placeholder (NULL included, which `Option` cannot do untyped).
#[derive(Debug)]
pub(crate) struct Bind<'a>(&'a SqlValue);

/// `args` as the driver takes them.
fn bind(args: &[SqlValue]) -> Vec<Bind<'_>> {
    args.iter().map(Bind).collect()
}

fn refs<'a>(bound: &'a [Bind<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect()
}

impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self.0 {
            SqlValue::Null => Ok(IsNull::Yes),
            SqlValue::Int(v) => match *ty {
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            SqlValue::Text(s) => s.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A PostgreSQL row, read by the shared column orders.
pub(crate) struct Cols(Row);

impl Columns for Cols {
    type Error = tokio_postgres::Error;

    fn int(&self, i: usize) -> Result<i64, Self::Error> {
        self.0.try_get(i)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error> {
        self.0.try_get(i)
    }

    fn text(&self, i: usize) -> Result<String, Self::Error> {
        self.0.try_get(i)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error> {
        self.0.try_get(i)
    }
}
