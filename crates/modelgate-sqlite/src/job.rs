//! The writer's jobs: what the store's callers and the checkpoint thread
//! queue for the writer thread, and what comes back. A module of its own
//! so both sides depend on it and not on each other.

use modelgate_core::domain::Grant;
use modelgate_core::error::StoreError;
use modelgate_sql::SqlValue;
use tokio::sync::oneshot;

/// A write the gateway waits for.
#[derive(Debug)]
pub(crate) enum Work {
    /// [`modelgate_sql::RESERVE_QUIET`] with the first parameters and, if
    /// it granted, [`modelgate_sql::GRANTED`] and [`modelgate_sql::LEASE`]
    /// with the second.
    Reserve(Vec<SqlValue>, Vec<SqlValue>),
    /// [`modelgate_sql::CHARGE`], [`modelgate_sql::RECORD`] and
    /// [`modelgate_sql::END_LEASE`] (the request id), together or not at
    /// all.
    Settle(Vec<SqlValue>, Vec<SqlValue>, String),
    /// One statement with its parameters (a stored Response).
    Execute(&'static str, Vec<SqlValue>),
    /// Copy the WAL's last frames back, between two batches (see
    /// `checkpoint.rs`).
    Checkpoint,
}

/// What a job produced: the reserved tokens and money for a reservation.
pub(crate) type Done = Result<Option<Grant>, StoreError>;

#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) reply: oneshot::Sender<Done>,
}
