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
//! fails every job in it (and changes nothing). On a WAL file, a caller that
//! finds nobody writing commits its own job at once instead (see
//! [`Writer::submit`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use modelgate_core::domain::Grant;
use modelgate_core::error::StoreError;
use modelgate_sql::{self as sql, SqlValue};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params_from_iter};
use tokio::sync::oneshot;

use crate::checkpoint::{self, Checkpointer};
use crate::{bind, store_err};

/// Jobs taken into one transaction at most.
const MAX_BATCH: usize = 512;

/// A write the gateway waits for.
pub(crate) enum Work {
    /// [`sql::RESERVE`] with the first parameters, then [`sql::LEASE`]
    /// with the second.
    Reserve(Vec<SqlValue>, Vec<SqlValue>),
    /// [`sql::CHARGE`], [`sql::RECORD`] and [`sql::END_LEASE`] (the
    /// request id), together or not at all.
    Settle(Vec<SqlValue>, Vec<SqlValue>, String),
    /// Copy the WAL's last frames back, between two batches (see
    /// `checkpoint.rs`).
    Checkpoint,
}

/// What a job produced: the reserved tokens and money for a reservation.
pub(crate) type Done = Result<Option<Grant>, StoreError>;

pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) reply: oneshot::Sender<Done>,
}

/// A WAL file on a local disk, for the writer to keep bounded.
#[derive(Debug)]
pub(crate) struct WalFile {
    /// A connection of the checkpoint thread's own.
    pub(crate) checkpoints: Connection,
    /// The `-wal` file.
    pub(crate) path: PathBuf,
    /// The hard bound.
    pub(crate) max_bytes: u64,
}

impl WalFile {
    /// Whether the WAL has grown past its bound since it was last emptied.
    /// The file only grows when the log is that long (SQLite reuses it from
    /// its start otherwise), and emptying it truncates it.
    fn over(path: &Path, max_bytes: u64) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.len() > max_bytes)
    }
}

/// The handle to the writer thread; dropping it drains the queue, then
/// stops the thread.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Stopped first: it holds a sender of the queue.
    checkpointer: Option<Checkpointer>,
    queue: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// The writer's connection (for a private in-memory database, the
    /// store's only one).
    conn: Arc<Mutex<Connection>>,
    /// Whether a caller that finds the connection free commits its own job
    /// at once (see [`Writer::submit`]), with the busy timeout to restore.
    inline: Option<Duration>,
    /// The WAL file and its bound, when there is one.
    wal: Option<(PathBuf, u64)>,
}

impl Writer {
    /// Start the writer on `conn`. With a `wal` file on a local disk, also
    /// the checkpoint thread, and callers may commit inline.
    pub(crate) fn start(
        conn: Arc<Mutex<Connection>>,
        wal: Option<WalFile>,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let (queue, jobs) = mpsc::channel();
        let (checkpointer, wal) = match wal {
            Some(w) => {
                lock(&conn)?
                    .pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(store_err)?;
                let c = Checkpointer::start(w.checkpoints, queue.clone())?;
                (Some(c), Some((w.path, w.max_bytes)))
            }
            None => (None, None),
        };
        let inline = checkpointer.as_ref().map(|_| busy_timeout);
        let shared = Arc::clone(&conn);
        let bound = wal.clone().map(|(path, max)| (path, max, busy_timeout));
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&shared, jobs, bound.as_ref()))
            .map_err(|e| StoreError::Unavailable(format!("writer thread: {e}")))?;
        Ok(Self {
            checkpointer,
            queue: Some(queue),
            thread: Some(thread),
            conn,
            inline,
            wal,
        })
    }

    /// Commit `work`; answers once it is committed.
    ///
    /// When the connection is free, the caller commits its own job at once
    /// on its own thread: a WAL commit is a few page writes (tens of
    /// microseconds, no `fsync`), less than handing the job to the writer
    /// thread and back costs in wake-ups, which under CPU contention were
    /// most of the gateway's tail. Otherwise (the writer is busy, or another
    /// process holds the database's write lock) the job queues for the
    /// writer thread, which batches and waits out locks: a caller's thread
    /// never waits for a lock.
    pub(crate) async fn submit(&self, work: Work) -> Done {
        let work = match self.try_inline(work) {
            Ok(done) => return done,
            Err(work) => work,
        };
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("database writer stopped".into());
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { work, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Commit `work` here if nobody else is writing; `work` back otherwise.
    fn try_inline(&self, work: Work) -> Result<Done, Work> {
        let Some(busy_timeout) = self.inline else {
            return Err(work);
        };
        let Ok(mut conn) = self.conn.try_lock() else {
            return Err(work);
        };
        // Emptying an overgrown WAL waits for readers: the writer thread's
        // work, never a caller's.
        if self
            .wal
            .as_ref()
            .is_some_and(|(p, max)| WalFile::over(p, *max))
        {
            return Err(work);
        }
        // Fail at once rather than wait for another process's lock.
        if conn.busy_timeout(Duration::ZERO).is_err() {
            return Err(work);
        }
        let done = begin(&mut conn).ok().and_then(|tx| {
            let done = apply(&tx, &work);
            // A failed job rolls back (on drop) and fails alone, as in a
            // batch; a failed commit rolls back and goes to the writer.
            match done {
                Ok(_) => tx.commit().ok().map(|()| done),
                Err(_) => Some(done),
            }
        });
        if let Err(e) = conn.busy_timeout(busy_timeout) {
            tracing::warn!(error = %e, "restoring the busy timeout failed");
        }
        done.ok_or(work)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.checkpointer.take());
        drop(self.queue.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(conn: &Mutex<Connection>) -> Result<MutexGuard<'_, Connection>, StoreError> {
    conn.lock()
        .map_err(|_| StoreError::Unavailable("connection lock poisoned".into()))
}

/// Serve `jobs`; with a WAL `(path, bound, patience)`, empty it first
/// whenever it is over its bound.
fn run(conn: &Mutex<Connection>, jobs: Receiver<Job>, wal: Option<&(PathBuf, u64, Duration)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
        let checkpoint = batch.iter().any(|j| matches!(j.work, Work::Checkpoint));
        batch.retain(|j| !matches!(j.work, Work::Checkpoint));
        let results = lock(conn).and_then(|mut c| {
            if let Some((path, max, patience)) = wal
                && WalFile::over(path, *max)
            {
                checkpoint::truncate(&c, *patience);
            } else if checkpoint && let Err(e) = checkpoint::passive(&c) {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            commit(&mut c, &batch)
        });
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
        Work::Reserve(ask, lease) => {
            let got = tx
                .prepare_cached(sql::RESERVE)
                .and_then(|mut s| {
                    s.query_row(params_from_iter(bind(ask).iter()), |r| {
                        Ok(Grant {
                            tokens: r.get(0)?,
                            money: r.get(1)?,
                        })
                    })
                    .optional()
                })
                .map_err(store_err)?;
            if got.is_some() {
                tx.prepare_cached(sql::LEASE)
                    .and_then(|mut s| s.execute(params_from_iter(bind(lease).iter())))
                    .map_err(store_err)?;
            }
            Ok(got)
        }
        Work::Settle(charge, record, request_id) => {
            for (stmt, args) in [(sql::CHARGE, charge), (sql::RECORD, record)] {
                tx.prepare_cached(stmt)
                    .and_then(|mut s| s.execute(params_from_iter(bind(args).iter())))
                    .map_err(store_err)?;
            }
            tx.prepare_cached(sql::END_LEASE)
                .and_then(|mut s| s.execute([request_id]))
                .map_err(store_err)?;
            Ok(None)
        }
        Work::Checkpoint => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use modelgate_core::domain::NewKey;
    use modelgate_core::ports::KeyStore;
    use modelgate_testkit::conformance::key;

    use super::Work;
    use crate::{Journal, Options, SqliteStore};

    async fn store(name: &str, journal: Journal) -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mg-inline-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("db.sqlite");
        let opts = Options {
            journal,
            ..Options::default()
        };
        let s = SqliteStore::open(&path, opts).unwrap();
        s.insert_key(NewKey {
            key: key("key_i", Some(100)),
        })
        .await
        .unwrap();
        (s, dir)
    }

    fn reserve(n: i64) -> Work {
        let lease = modelgate_core::domain::Lease {
            request_id: format!("req_{n}"),
            key_id: "key_i".into(),
            model: "m".into(),
            backend: "vllm".into(),
            amount: 0,
            money: 0,
            created_at: 0,
            expires_at: 1,
        };
        let ask = modelgate_core::domain::Ask {
            tokens: (n, n),
            ..Default::default()
        };
        Work::Reserve(
            modelgate_sql::reserve_params("key_i", &ask),
            modelgate_sql::lease_params(&lease),
        )
    }

    #[tokio::test]
    async fn a_free_wal_writer_commits_on_the_callers_thread() {
        let (s, dir) = store("free", Journal::Wal).await;
        let done = s.writer.try_inline(reserve(10));
        assert!(
            matches!(done, Ok(Ok(Some(g))) if g.tokens == 10),
            "committed inline"
        );
        let k = s.get_key("key_i").await.unwrap().unwrap();
        assert_eq!(k.quota_reserved, 10, "and it is in the database");
        // A rollback journal (EFS) always goes through the writer thread.
        let (d, dir2) = store("delete", Journal::Delete).await;
        assert!(d.writer.try_inline(reserve(10)).is_err());
        drop((s, d));
        for dir in [dir, dir2] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_never_waits_for_another_process_lock() {
        let (s, dir) = store("locked", Journal::Wal).await;
        let other = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let t = Instant::now();
        let back = s.writer.try_inline(reserve(10));
        assert!(back.is_err(), "handed back for the writer thread");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "without waiting out the 5 s busy timeout: {:?}",
            t.elapsed()
        );
        // The writer thread waits for the lock; the job lands once it is free.
        let s = std::sync::Arc::new(s);
        let queued = tokio::spawn({
            let s = s.clone();
            async move { s.writer.submit(reserve(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!queued.is_finished(), "waits while the lock is held");
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(queued.await.unwrap().unwrap().map(|g| g.tokens), Some(10));
        let k = s.get_key("key_i").await.unwrap().unwrap();
        assert_eq!(k.quota_reserved, 10);
        drop(s);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
