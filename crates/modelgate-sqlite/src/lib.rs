//! The SQLite store: keys, models and usage for the native server (and for
//! the Lambda on EFS), applying the same `migrations/` as D1.
//!
//! # Layout
//! - `lib.rs`: opening, pragmas, migrations. **All IO of this crate is
//!   SQLite file IO**: reads and admin writes synchronously under one
//!   connection mutex (statements take microseconds).
//! - `writer.rs`: the hot-path writes (quota reservations, settlements,
//!   stored Responses) on their own connection: committed by the caller
//!   when nobody else writes, else group-committed by a writer thread
//!   (many requests, one transaction), each answered once committed.
//! - `checkpoint.rs`: WAL checkpoints beside the writes, not inside them.
//! - `keys.rs`: keys, atomic quota reservation, settlement.
//! - `models.rs`: models and usage reports.
//! - `responses.rs`: stored Responses.
//!
//! Counters stay exact across processes too (several Lambdas on one EFS
//! file, or the CLI beside the server): each change is one statement or one
//! `BEGIN IMMEDIATE` transaction, never a read followed by a write.

mod checkpoint;
mod job;
mod keys;
mod mcp;
mod models;
mod responses;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use modelgate_core::error::StoreError;
use modelgate_sql::{Columns, SqlValue};
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, params_from_iter};
use writer::{WalFile, Writer};

/// The migrations, in order (the files of the top-level `migrations/`).
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../../migrations/0001_init.sql"),
    ),
    (
        "0002_rate_limits.sql",
        include_str!("../../../migrations/0002_rate_limits.sql"),
    ),
    (
        "0003_leases.sql",
        include_str!("../../../migrations/0003_leases.sql"),
    ),
    (
        "0004_endpoints.sql",
        include_str!("../../../migrations/0004_endpoints.sql"),
    ),
    (
        "0005_responses.sql",
        include_str!("../../../migrations/0005_responses.sql"),
    ),
    (
        "0006_deployments.sql",
        include_str!("../../../migrations/0006_deployments.sql"),
    ),
    (
        "0007_cost.sql",
        include_str!("../../../migrations/0007_cost.sql"),
    ),
    (
        "0008_budgets.sql",
        include_str!("../../../migrations/0008_budgets.sql"),
    ),
    (
        "0009_tpm.sql",
        include_str!("../../../migrations/0009_tpm.sql"),
    ),
    (
        "0010_model_limits.sql",
        include_str!("../../../migrations/0010_model_limits.sql"),
    ),
    (
        "0011_leases_by_request.sql",
        include_str!("../../../migrations/0011_leases_by_request.sql"),
    ),
    (
        "0012_anthropic_backend.sql",
        include_str!("../../../migrations/0012_anthropic_backend.sql"),
    ),
    (
        "0013_mcp_servers.sql",
        include_str!("../../../migrations/0013_mcp_servers.sql"),
    ),
    (
        "0014_allowed_tools.sql",
        include_str!("../../../migrations/0014_allowed_tools.sql"),
    ),
    (
        "0015_usage_arguments.sql",
        include_str!("../../../migrations/0015_usage_arguments.sql"),
    ),
];

/// How the database file is journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journal {
    /// Write-ahead log: fast, for a local disk.
    Wal,
    /// Rollback journal: for network file systems (EFS), where WAL's shared
    /// memory is not safe.
    Delete,
}

/// Opening options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Journal mode.
    pub journal: Journal,
    /// How long a statement waits for another process's lock.
    pub busy_timeout: Duration,
    /// The WAL's hard bound: past it the writer empties the WAL itself
    /// before its next commit, however far the checkpoint thread is behind.
    pub wal_max_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            journal: Journal::Wal,
            busy_timeout: Duration::from_secs(5),
            wal_max_bytes: 64 << 20,
        }
    }
}

/// A SQLite-backed store.
#[derive(Debug)]
pub struct SqliteStore {
    /// Reads and admin writes.
    conn: Arc<Mutex<Connection>>,
    /// Quota reservations and settlements, group-committed.
    writer: Writer,
}

/// A SQLite row, read by the shared column orders.
pub(crate) struct Cols<'a, 'b>(pub(crate) &'a Row<'b>);

impl Columns for Cols<'_, '_> {
    type Error = rusqlite::Error;

    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.0.get(i)
    }

    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.0.get(i)
    }

    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.0.get(i)
    }

    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.0.get(i)
    }
}

/// Map a SQLite error to the store error the gateway understands.
pub(crate) fn store_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => {
            StoreError::Conflict("A record with that name".into())
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable("database busy".into())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path` and migrate it.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("create {}: {e}", dir.display())))?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open = || {
            let conn = Connection::open_with_flags(path, flags).map_err(store_err)?;
            configure(&conn, opts)?;
            Ok::<_, StoreError>(conn)
        };
        let reads = open()?;
        migrate(&reads)?;
        let wal = match opts.journal {
            Journal::Wal => Some(WalFile {
                checkpoints: open()?,
                path: wal_path(path),
                max_bytes: opts.wal_max_bytes,
            }),
            Journal::Delete => None,
        };
        let writes = Arc::new(Mutex::new(open()?));
        Ok(Self {
            conn: Arc::new(Mutex::new(reads)),
            writer: Writer::start(writes, wal, opts.busy_timeout)?,
        })
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(store_err)?;
        configure(&conn, Options::default())?;
        migrate(&conn)?;
        // Nothing else can open a private in-memory database: the writer
        // shares the store's connection.
        let conn = Arc::new(Mutex::new(conn));
        let writer = Writer::start(Arc::clone(&conn), None, Duration::ZERO)?;
        Ok(Self { conn, writer })
    }
}

/// Where SQLite keeps the WAL of the database at `db`.
fn wal_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// Pragmas every connection gets.
fn configure(conn: &Connection, opts: Options) -> Result<(), StoreError> {
    conn.busy_timeout(opts.busy_timeout).map_err(store_err)?;
    // Pages of 1 KiB in a new database (an existing one keeps its own):
    // a request's two commits write ~8 pages to the WAL whatever their
    // size, and the rows are small, so 4 KiB pages wrote ~33 KB a request
    // where ~8 KB hold the same; checkpoints then copy and sync a quarter
    // as much, and their `fsync`s stall the requests' WAL writes less
    // (BENCHMARKS.md, concurrency 1).
    conn.pragma_update(None, "page_size", 1024)
        .map_err(store_err)?;
    let journal = match opts.journal {
        Journal::Wal => "WAL",
        Journal::Delete => "DELETE",
    };
    // `journal_mode` answers with a row; read it rather than execute.
    conn.query_row(&format!("PRAGMA journal_mode = {journal}"), [], |_| Ok(()))
        .map_err(store_err)?;
    if opts.journal == Journal::Wal {
        // The checkpoint thread and the writer keep the WAL short (see
        // `checkpoint.rs`). Left on, SQLite's automatic checkpoint ran in
        // whichever connection's commit found the WAL past 1,000 pages: a
        // stored Response's insert on a runtime thread, copying the WAL
        // back with three `fsync`s (3-10 ms, every ~0.4 s at 2,000 req/s).
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(store_err)?;
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(store_err)
}

impl SqliteStore {
    /// The one row `sql` (with one `?1` parameter) finds, built by `row`
    /// and finished by `finish` (the fallible JSON columns).
    pub(crate) fn query_one<R, T>(
        &self,
        sql: &str,
        arg: &str,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
        finish: impl FnOnce(R) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let conn = self.conn()?;
        let found = conn
            .prepare_cached(sql)
            .map_err(store_err)?
            .query_row([arg], row)
            .optional();
        found.map_err(store_err)?.map(finish).transpose()
    }

    /// Every row `sql` finds with `args`.
    pub(crate) fn query_all<R, T>(
        &self,
        sql: &str,
        args: &[SqlValue],
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
        finish: impl Fn(R) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql).map_err(store_err)?;
        let rows = stmt
            .query_map(params_from_iter(bind(args).iter()), row)
            .map_err(store_err)?;
        rows.map(|r| r.map_err(store_err).and_then(&finish))
            .collect()
    }

    /// Run one statement; rows changed.
    pub(crate) fn execute(&self, sql: &str, args: &[SqlValue]) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql).map_err(store_err)?;
        stmt.execute(params_from_iter(bind(args).iter()))
            .map_err(store_err)
    }

    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Unavailable("connection lock poisoned".into()))
    }
}

/// Apply the migrations not yet recorded in `d1_migrations` (the table
/// wrangler keeps for D1, so either tool can migrate the same schema).
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS d1_migrations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT UNIQUE,
            applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)",
    )
    .map_err(store_err)?;
    for (name, sql) in MIGRATIONS {
        let done: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM d1_migrations WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )
            .map_err(store_err)?;
        if !done {
            let tx = format!(
                "BEGIN IMMEDIATE; {sql}\nINSERT OR IGNORE INTO d1_migrations (name) VALUES ('{name}'); COMMIT;"
            );
            if let Err(e) = conn.execute_batch(&tx) {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(store_err(e));
            }
        }
    }
    Ok(())
}

/// The core's parameter values as rusqlite's.
pub(crate) fn bind(args: &[SqlValue]) -> Vec<Value> {
    args.iter()
        .map(|a| match a {
            SqlValue::Null => Value::Null,
            SqlValue::Int(i) => Value::Integer(*i),
            SqlValue::Text(t) => Value::Text(t.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<&str> = super::MIGRATIONS.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, embedded);
    }

    #[test]
    fn reopening_does_not_migrate_twice() {
        let dir = std::env::temp_dir().join(format!("mg-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("db.sqlite");
        drop(super::SqliteStore::open(&path, super::Options::default()).unwrap());
        let s = super::SqliteStore::open(&path, super::Options::default()).unwrap();
        let n: i64 = s
            .conn()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM d1_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, super::MIGRATIONS.len() as i64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
