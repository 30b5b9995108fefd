//! The SQL every SQL store runs, text and parameters only (no IO): the
//! SQLite dialect (rusqlite natively and on EFS, D1 on Workers) over the
//! schema in `migrations/`, and PostgreSQL's over `migrations/postgres/`.
//!
//! Each store binds [`SqlValue`]s its own way and executes. Keeping one copy
//! is what keeps the stores' counters equally exact: reservation and rate
//! limiting are single statements, and settlement is one transaction (two
//! statements and a delete in SQLite's dialect, one statement in
//! PostgreSQL's). Placeholders are numbered (`?1`); [`postgres::numbered`]
//! turns a shared statement into PostgreSQL's `$1`.
//!
//! # Layout
//! `rows` (the tables' rows and their domain records) and `read` (rows
//! from columns) at the bottom; `patch` (an admin patch as an `UPDATE`) and
//! `statements` and `mcp` above them; `postgres` rewrites any of them. Imports flow
//! that way only, and out to the core's domain types.

mod mcp;
mod patch;
pub mod postgres;
mod read;
mod rows;
mod statements;

pub use mcp::*;
pub use patch::{key_patch, model_patch};
pub use read::{Columns, lease_row, response_row, summary_row, usage_row};
pub use rows::{KeyRow, ModelRow, RecordRow};
pub use statements::*;

/// A parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// INTEGER (booleans are 0/1).
    Int(i64),
    /// TEXT.
    Text(String),
}

impl From<Option<i64>> for SqlValue {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Self::Null, Self::Int)
    }
}

impl From<Option<String>> for SqlValue {
    fn from(v: Option<String>) -> Self {
        v.map_or(Self::Null, Self::Text)
    }
}

pub(crate) fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

pub(crate) fn int(v: impl Into<i64>) -> SqlValue {
    SqlValue::Int(v.into())
}

pub(crate) fn list(l: &[String]) -> SqlValue {
    SqlValue::Text(serde_json::to_string(l).unwrap_or_else(|_| "[]".into()))
}
