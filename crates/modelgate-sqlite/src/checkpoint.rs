//! WAL checkpoints beside the writes instead of inside them.
//!
//! By default SQLite checkpoints inside the commit that grows the WAL past
//! 1,000 pages: that commit copies every page back into the database file
//! and waits for two `fsync`s of all of it, and every request queued on the
//! writer waits too (stalls of 5-20 ms here, at 1,000 req/s every second or
//! so: the gateway's p99). Here the writer's connection never checkpoints
//! on its own. A thread with a connection of its own copies the bulk a few
//! times a second with a `PASSIVE` checkpoint, which takes no lock a writer
//! waits for. It cannot finish while writes go on, and the WAL only starts
//! over from its beginning once everything in it is copied, so it then asks
//! the writer to copy the last frames between two batches: a few pages and
//! two short syncs instead of the whole WAL. Durability does not change: a
//! commit is as durable in the WAL as before.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use modelgate_core::error::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::job::{Job, Work};

/// How often the bulk of the WAL is copied back.
const INTERVAL: Duration = Duration::from_millis(100);

/// The WAL length past which the writer copies the rest back, so that the
/// WAL starts over: SQLite's own default checkpoint size (1,000 pages) at
/// its default page size. A size, not a page count: a database made with
/// smaller pages restarts its WAL no more often for them.
const RESTART_BYTES: i64 = 4 << 20;

/// A `PASSIVE` checkpoint: the WAL's frames and how many are now copied
/// back, or `None` when another connection is checkpointing.
pub(crate) fn passive(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let busy: i64 = r.get(0)?;
        Ok((busy == 0).then_some((r.get(1)?, r.get(2)?)))
    })
}

/// Copy the whole WAL back and truncate it: the writer's hard bound on the
/// WAL, for when the checkpoint thread cannot keep up. Called between two
/// commits, so nothing commits until it is done or `patience` runs out.
///
/// SQLite answers busy at once, without its busy handler, while another
/// connection checkpoints (our checkpoint thread, a `PASSIVE` pass that
/// takes longer the further behind it is): so ask again until then. Readers
/// of older snapshots are waited for by the busy handler itself. Past
/// `patience` (a reader in another process holding its snapshot) the
/// commits go on rather than fail, and the next one tries again.
pub(crate) fn truncate(conn: &Connection, patience: Duration) {
    let started = std::time::Instant::now();
    loop {
        let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        match busy {
            Ok(0) => return,
            Ok(_) | Err(_) if started.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(_) => {
                tracing::warn!("WAL over its bound: still busy after the busy timeout");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL truncation failed");
                return;
            }
        }
    }
}

/// The handle to the checkpoint thread; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Checkpoint with `conn`, handing the last frames to the writer's
    /// `queue`.
    pub(crate) fn start(conn: Connection, queue: Sender<Job>) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let page: i64 = conn
                    .query_row("PRAGMA page_size", [], |r| r.get(0))
                    .unwrap_or(4096);
                let restart_frames = RESTART_BYTES / page.max(512);
                // The WAL's length at the last pass: unchanged, nothing was
                // written since, and the writer has nothing to finish.
                let mut seen = 0;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    match passive(&conn) {
                        Ok(Some((frames, _))) if frames >= restart_frames && frames != seen => {
                            seen = frames;
                            // Nobody waits for the answer.
                            let (reply, _) = oneshot::channel();
                            let work = Work::Checkpoint;
                            if queue.send(Job { work, reply }).is_err() {
                                break;
                            }
                        }
                        Ok(_) => {}
                        // Retried next time; nothing waits on it.
                        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("checkpoint thread: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
