//! Group commit for the hot-path writes (quota reservations and
//! settlements).
//!
//! Every request writes twice: it reserves quota, then settles. As one
//! transaction each, the commits (WAL frames, locks, the statement journal)
//! were most of the gateway's CPU under load. Here one thread owns the
//! writes: it takes every job waiting in its queue, runs them in order in one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers each
//! caller. Nothing is answered before it is committed, so a reservation or a
//! settlement is exactly as durable as before; a batch that fails to commit
//! fails every job in it (and changes nothing).

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use modelgate_core::error::StoreError;
use modelgate_core::sql::{self, SqlValue};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use tokio::sync::oneshot;

use crate::{bind, store_err};

/// Jobs taken into one transaction at most.
const MAX_BATCH: usize = 512;

/// A write the gateway waits for.
pub(crate) enum Work {
    /// [`sql::RESERVE`]: key id, minimum, maximum.
    Reserve(String, i64, i64),
    /// [`sql::CHARGE`] then [`sql::RECORD`], together or not at all.
    Settle(Vec<SqlValue>, Vec<SqlValue>),
}

/// What a job produced: the reserved amount for a reservation.
pub(crate) type Done = Result<Option<i64>, StoreError>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Done>,
}

/// The connection the writer uses: its own for a file, or the store's one
/// connection for a private in-memory database (which nothing else can open).
pub(crate) enum WriterConn {
    Own(Connection),
    Shared(Arc<Mutex<Connection>>),
}

/// The handle to the writer thread; dropping it drains the queue, then
/// stops the thread.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn start(conn: WriterConn) -> Result<Self, StoreError> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, jobs))
            .map_err(|e| StoreError::Unavailable(format!("writer thread: {e}")))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queue `work` and wait until it is committed.
    pub(crate) async fn submit(&self, work: Work) -> Done {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("database writer stopped".into());
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { work, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: WriterConn, jobs: Receiver<Job>) {
    let mut conn = conn;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
        let results = match &mut conn {
            WriterConn::Own(c) => commit(c, &batch),
            WriterConn::Shared(shared) => match shared.lock() {
                Ok(mut c) => commit(&mut c, &batch),
                Err(_) => Err(StoreError::Unavailable("connection lock poisoned".into())),
            },
        };
        match results {
            Ok(results) => {
                for (job, done) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(done);
                }
            }
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Run every job in one transaction; the per-job results once committed.
/// Not getting the write lock (busy past the timeout) or failing to commit
/// fails the whole batch at once. A job whose own statement fails rolls the
/// batch back, and then each job runs again in a transaction of its own, so
/// the failure stays with that job (rare: the statements cannot fail on
/// valid input, only on a broken database).
fn commit(conn: &mut Connection, batch: &[Job]) -> Result<Vec<Done>, StoreError> {
    let tx = begin(conn)?;
    let results: Vec<Done> = batch.iter().map(|job| apply(&tx, &job.work)).collect();
    if results.iter().all(Result::is_ok) {
        tx.commit().map_err(store_err)?;
        return Ok(results);
    }
    drop(tx); // rolls back: a failed settlement may have half-run
    if batch.len() == 1 {
        return Ok(results);
    }
    Ok(batch
        .iter()
        .map(|job| {
            let tx = begin(conn)?;
            let done = apply(&tx, &job.work)?;
            tx.commit().map_err(store_err)?;
            Ok(done)
        })
        .collect())
}

/// A write transaction, taking the write lock now (or waiting the busy
/// timeout for it).
fn begin(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_err)
}

/// One job's statements inside the caller's transaction.
fn apply(tx: &rusqlite::Transaction<'_>, work: &Work) -> Done {
    match work {
        Work::Reserve(key_id, min, max) => tx
            .prepare_cached(sql::RESERVE)
            .and_then(|mut s| {
                s.query_row(params![key_id, min, max], |r| r.get(0))
                    .optional()
            })
            .map_err(store_err),
        Work::Settle(charge, record) => {
            for (stmt, args) in [(sql::CHARGE, charge), (sql::RECORD, record)] {
                tx.prepare_cached(stmt)
                    .and_then(|mut s| s.execute(params_from_iter(bind(args).iter())))
                    .map_err(store_err)?;
            }
            Ok(None)
        }
    }
}
