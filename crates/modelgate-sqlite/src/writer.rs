//! Group commit for the hot-path writes (quota reservations,
//! settlements, stored Responses).
//!
//! Every request writes twice: it reserves quota, then settles. As one
//! transaction each, the commits (WAL frames, locks, the statement journal)
//! were most of the gateway's CPU under load. Here one thread owns the
//! writes: it takes every job waiting in its queue, runs them in order in one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers each
//! caller. Nothing is answered before it is committed, so a reservation or a
//! settlement is exactly as durable as before; a batch that fails to commit
//! fails every job in it (and changes nothing). On a WAL file, the callers
//! batch and commit on their own threads instead, handing a batch to the
//! writer thread only when the connection is busy (see [`Writer::submit`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use modelgate_core::error::StoreError;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::checkpoint::{self, Checkpointer};
use crate::job::{Done, Job, Work};
use crate::store_err;
use prepared::Prepared;

/// Jobs taken into one transaction at most.
const MAX_BATCH: usize = 512;

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
    /// Whether callers commit their batches themselves when the connection
    /// is free (see [`Writer::submit`]), with the busy timeout to restore.
    inline: Option<Duration>,
    /// The batch forming, and how busy the writes have been.
    forming: Mutex<Forming>,
    /// The WAL file and its bound, when there is one.
    wal: Option<(PathBuf, u64)>,
    /// When callers last looked at the WAL's size, and whether it was over
    /// its bound (see [`Writer::wal_over`]).
    wal_seen: Mutex<Option<(Instant, bool)>>,
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
            forming: Mutex::new(Forming::default()),
            wal,
            wal_seen: Mutex::new(None),
        })
    }

    /// Commit `work`; answers once it is committed.
    ///
    /// On a WAL file the callers' own threads commit (group commit): the
    /// first caller to find no batch forming leads one, and commits it in
    /// one transaction when nobody else is writing. Under load (writes
    /// arriving less than [`BUSY_GAP`] apart, on average) it first yields
    /// [`BUSY_YIELDS`] times, so that the requests ready on this runtime
    /// reach their own writes and join it: one commit then serves many
    /// requests instead of one each. At lower rates it commits at once, as
    /// a yield would only put its request behind others. A WAL commit is a
    /// few page writes (tens of microseconds, no `fsync`), less than
    /// handing the job to the writer thread and back costs in wake-ups,
    /// which under CPU contention were most of the gateway's tail. Otherwise (the writer thread is
    /// busy, or another process holds the database's write lock) the batch
    /// goes to the writer thread, which waits out locks: a caller's thread
    /// never waits for a lock.
    pub(crate) async fn submit(&self, work: Work) -> Done {
        let (reply, answer) = oneshot::channel();
        let job = Job { work, reply };
        if self.inline.is_some() {
            let (lead, busy) = self
                .forming
                .lock()
                .map_err(|_| poisoned())?
                .join(job, Instant::now());
            if lead {
                // Commits after the yield (or at once), or when this caller
                // goes away during it.
                let _leader = Leader(self);
                if busy {
                    for _ in 0..BUSY_YIELDS {
                        tokio::task::yield_now().await;
                    }
                }
            }
        } else {
            self.send(vec![job]);
        }
        answer.await.map_err(|_| stopped())?
    }

    /// Hand `jobs` to the writer thread; if it has stopped, each job's
    /// caller learns so when its reply is dropped.
    fn send(&self, jobs: Vec<Job>) {
        if let Some(queue) = &self.queue {
            for job in jobs {
                let _ = queue.send(job);
            }
        }
    }

    /// Take the forming batch and commit it here if nobody else is
    /// writing, else hand it to the writer thread.
    fn flush(&self) {
        let Ok(jobs) = self.forming.lock().map(|mut f| std::mem::take(&mut f.jobs)) else {
            return;
        };
        if jobs.is_empty() {
            return;
        }
        if let Err(jobs) = self.try_inline(jobs) {
            self.send(jobs);
        }
    }

    /// Commit `jobs` here and answer them if nobody else is writing;
    /// `jobs` back otherwise.
    fn try_inline(&self, jobs: Vec<Job>) -> Result<(), Vec<Job>> {
        let Some(busy_timeout) = self.inline else {
            return Err(jobs);
        };
        let Ok(mut conn) = self.conn.try_lock() else {
            return Err(jobs);
        };
        // Emptying an overgrown WAL waits for readers: the writer thread's
        // work, never a caller's.
        if self.wal_over() {
            return Err(jobs);
        }
        // Fail at once rather than wait for another process's lock.
        if conn.busy_timeout(Duration::ZERO).is_err() {
            return Err(jobs);
        }
        // Not getting the lock or failing to commit changes nothing: the
        // writer thread then tries again.
        let done = commit(&mut conn, &jobs);
        if let Err(e) = conn.busy_timeout(busy_timeout) {
            tracing::warn!(error = %e, "restoring the busy timeout failed");
        }
        match done {
            Ok(results) => {
                answer(jobs, results);
                Ok(())
            }
            Err(_) => Err(jobs),
        }
    }

    /// Whether the WAL is over its bound, as a caller about to commit sees
    /// it: the file's size looked at no more than once every
    /// [`WAL_GLANCE`] (a `statx` on every commit was ~1% of the gateway's
    /// CPU at saturation). In that time a few commits at most can take it
    /// past the bound, which is megabytes; the writer thread, which empties
    /// it, looks every time.
    fn wal_over(&self) -> bool {
        let Some((path, max)) = &self.wal else {
            return false;
        };
        let now = Instant::now();
        let Ok(mut seen) = self.wal_seen.lock() else {
            return WalFile::over(path, *max);
        };
        if let Some((at, over)) = *seen
            && now.saturating_duration_since(at) < WAL_GLANCE
        {
            return over;
        }
        let over = WalFile::over(path, *max);
        *seen = Some((now, over));
        over
    }
}

/// See [`Writer::wal_over`].
const WAL_GLANCE: Duration = Duration::from_millis(1);

/// The average gap between writes below which a batch's leader waits for
/// company (~20,000 writes a second: two per request at ~10,000 requests).
const BUSY_GAP: Duration = Duration::from_micros(50);

/// How many times a busy batch's leader yields before it commits: the
/// second pass of the scheduler brings in the writes of the requests the
/// first one woke (side by side at saturation: ~2.5 µs less CPU a request
/// and a lower p99 than with one).
const BUSY_YIELDS: usize = 2;

/// The batch forming, with an average of the gaps between writes.
#[derive(Debug)]
struct Forming {
    jobs: Vec<Job>,
    last: Option<Instant>,
    gap: Duration,
}

impl Default for Forming {
    fn default() -> Self {
        Self {
            jobs: Vec::new(),
            last: None,
            gap: Duration::from_secs(1),
        }
    }
}

impl Forming {
    /// Add `job`, arrived at `now`: whether it leads the batch, and whether
    /// the writes before it came in busily enough for its leader to wait
    /// for company.
    fn join(&mut self, job: Job, now: Instant) -> (bool, bool) {
        let busy = self.gap < BUSY_GAP;
        if let Some(last) = self.last {
            // A moving average over the last ~8 gaps.
            self.gap = self.gap - self.gap / 8 + now.saturating_duration_since(last) / 8;
        }
        self.last = Some(now);
        self.jobs.push(job);
        (self.jobs.len() == 1, busy)
    }
}

/// The leader of a forming batch: dropped (done yielding, or its caller
/// gone meanwhile), it commits or hands on whatever formed, so no job waits
/// on a leader that is gone.
struct Leader<'a>(&'a Writer);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.0.flush();
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("database writer stopped".into())
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("connection lock poisoned".into())
}

/// Send each job its result.
fn answer(jobs: impl IntoIterator<Item = Job>, results: Vec<Done>) {
    for (job, done) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(done);
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
    conn.lock().map_err(|_| poisoned())
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
            Ok(results) => answer(batch.drain(..), results),
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
    let mut prepared = Prepared::new(&tx);
    let results: Vec<Done> = batch.iter().map(|job| prepared.apply(&job.work)).collect();
    drop(prepared);
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
            let done = Prepared::new(&tx).apply(&job.work)?;
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

mod prepared;
#[cfg(test)]
mod tests;
