//! The writer: group commit, its leader, the writer thread.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use modelgate_core::domain::NewKey;
use modelgate_core::ports::{Accounting, KeyStore, ResponseStore};
use modelgate_testkit::conformance::{key, stored_response};

use super::{Done, Forming, Job, WAL_GLANCE, Work};
use crate::{Journal, Options, SqliteStore};
use tokio::sync::oneshot;

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

/// The integer value of pragma `name` on `c`.
fn pragma(c: &rusqlite::Connection, name: &str) -> i64 {
    c.pragma_query_value(None, name, |r| r.get(0)).unwrap()
}

/// A job for `work` and where its answer arrives.
fn job(work: Work) -> (Job, oneshot::Receiver<Done>) {
    let (reply, answer) = oneshot::channel();
    (Job { work, reply }, answer)
}

#[tokio::test]
async fn a_free_wal_writer_commits_on_the_callers_thread() {
    let (s, dir) = store("free", Journal::Wal).await;
    let (j, mut answer) = job(reserve(10));
    assert!(s.writer.try_inline(vec![j]).is_ok(), "committed inline");
    assert!(
        matches!(answer.try_recv(), Ok(Ok(Some(g))) if g.tokens == 10),
        "and answered"
    );
    let k = s.get_key("key_i").await.unwrap().unwrap();
    assert_eq!(k.quota_reserved, 10, "and it is in the database");
    // A rollback journal (EFS) always goes through the writer thread.
    let (d, dir2) = store("delete", Journal::Delete).await;
    assert!(d.writer.try_inline(vec![job(reserve(10)).0]).is_err());
    drop((s, d));
    for dir in [dir, dir2] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn callers_trust_a_recent_glance_at_the_wal_size() {
    let (s, dir) = store("glance", Journal::Wal).await;
    assert!(!s.writer.wal_over(), "a fresh WAL is within its bound");
    // Seen over its bound just now (an instant that is never in the past
    // here, so a slow machine cannot age it): callers trust that and hand
    // their batch to the writer thread, which looks for itself.
    let now = Instant::now() + Duration::from_secs(3600);
    *s.writer.wal_seen.lock().unwrap() = Some((now, true));
    assert!(s.writer.wal_over());
    assert!(s.writer.try_inline(vec![job(reserve(1)).0]).is_err());
    // An older glance is taken again.
    let old = Instant::now().checked_sub(WAL_GLANCE * 2).unwrap();
    *s.writer.wal_seen.lock().unwrap() = Some((old, true));
    assert!(!s.writer.wal_over(), "looked again");
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn writes_ready_together_commit_in_one_transaction() {
    let (s, dir) = store("group", Journal::Wal).await;
    let commits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&commits);
    s.writer
        .conn
        .lock()
        .unwrap()
        .commit_hook(Some(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            false
        }))
        .unwrap();
    // Fourteen callers on one thread of a busy writer: the first yields,
    // the others join its batch before it commits. The thirteenth asks
    // for more than is left (78 of 100 taken); the batch's statements
    // carry nothing of it to the fourteenth.
    s.writer.forming.lock().unwrap().gap = Duration::ZERO;
    let asks: Vec<i64> = (1..=12).chain([30, 22]).collect();
    let grants = join_all(asks.iter().map(|&n| s.writer.submit(reserve(n)))).await;
    let tokens: Vec<Option<i64>> = grants
        .into_iter()
        .map(|g| g.unwrap().map(|g| g.tokens))
        .collect();
    let mut expected: Vec<Option<i64>> = (1..=12).map(Some).collect();
    expected.extend([None, Some(22)]);
    assert_eq!(tokens, expected, "each answered its own");
    assert_eq!(commits.load(Ordering::SeqCst), 1, "in one commit");
    let k = s.get_key("key_i").await.unwrap().unwrap();
    assert_eq!(k.quota_reserved, 100);
    let leases = s.leases(None).await.unwrap();
    let mut held: Vec<(String, i64)> = leases
        .into_iter()
        .map(|l| (l.request_id, l.amount))
        .collect();
    held.sort_by_key(|(_, amount)| *amount);
    let mut granted: Vec<i64> = (1..=12).chain([22]).collect();
    granted.sort_unstable();
    let want: Vec<(String, i64)> = granted.iter().map(|&n| (format!("req_{n}"), n)).collect();
    assert_eq!(held, want, "a lease for each grant, none for the refusal");
    // One caller alone commits at once, as its own batch.
    assert_eq!(s.writer.submit(reserve(20)).await.unwrap(), None);
    assert_eq!(commits.load(Ordering::SeqCst), 2);
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_leader_gone_while_its_batch_formed_still_commits_it() {
    let (s, dir) = store("gone", Journal::Wal).await;
    s.writer.forming.lock().unwrap().gap = Duration::ZERO;
    let mut leader = Box::pin(s.writer.submit(reserve(10)));
    let mut follower = Box::pin(s.writer.submit(reserve(5)));
    assert!(poll_once(leader.as_mut()).await.is_pending(), "yielding");
    assert!(poll_once(follower.as_mut()).await.is_pending(), "joined");
    drop(leader);
    assert_eq!(follower.await.unwrap().unwrap().tokens, 5);
    let k = s.get_key("key_i").await.unwrap().unwrap();
    assert_eq!(
        k.quota_reserved, 15,
        "the leader's own reservation landed too, as a queued one does: its lease ends it"
    );
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_idle_writer_commits_at_once_a_busy_one_waits_for_company() {
    let (s, dir) = store("idle", Journal::Wal).await;
    let mut alone = Box::pin(s.writer.submit(reserve(1)));
    assert!(
        matches!(poll_once(alone.as_mut()).await, Poll::Ready(Ok(Some(_)))),
        "committed on its first poll"
    );
    s.writer.forming.lock().unwrap().gap = Duration::ZERO;
    let mut busy = Box::pin(s.writer.submit(reserve(2)));
    assert!(poll_once(busy.as_mut()).await.is_pending(), "yields first");
    assert!(poll_once(busy.as_mut()).await.is_pending(), "twice");
    assert!(
        matches!(poll_once(busy.as_mut()).await, Poll::Ready(Ok(Some(g))) if g.tokens == 2),
        "then commits"
    );
    drop((alone, busy));
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn writes_are_busy_when_they_come_faster_than_the_gap_on_average() {
    let mut f = Forming::default();
    let t = Instant::now();
    let at = |f: &mut Forming, us: u64| {
        let (_, busy) = f.join(job(reserve(1)).0, t + Duration::from_micros(us));
        f.jobs.clear();
        busy
    };
    // One write a millisecond (1,000 requests a second): never busy.
    assert!((0..100).all(|i| !at(&mut f, i * 1000)));
    // One every 10 µs: busy within a few dozen writes, and stays so.
    let busy: Vec<bool> = (0..100).map(|i| at(&mut f, 100_000 + i * 10)).collect();
    assert!(busy[90..].iter().all(|b| *b), "{busy:?}");
    // A pause drops it at once.
    assert!(!{
        at(&mut f, 1_000_000);
        at(&mut f, 1_000_010)
    });
}

async fn poll_once<F: Future>(mut f: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_never_waits_for_another_process_lock() {
    let (s, dir) = store("locked", Journal::Wal).await;
    let other = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t = Instant::now();
    let back = s.writer.try_inline(vec![job(reserve(10)).0]);
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

#[tokio::test]
async fn a_stored_response_is_written_by_the_writer_never_waiting_on_the_callers_thread() {
    let (s, dir) = store("response", Journal::Wal).await;
    let other = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    // On the connection for reads, the insert waited for the lock on this
    // thread (SQLite's busy handler sleeping through the 5 s timeout) and
    // then failed: its first poll was never pending.
    let r = stored_response("resp_w", "key_i", 1_000, i64::MAX);
    let mut put = Box::pin(s.put_response(&r));
    assert!(poll_once(put.as_mut()).await.is_pending(), "queued");
    other.execute_batch("COMMIT").unwrap();
    put.await.unwrap();
    assert_eq!(s.get_response("resp_w", 2_000).await.unwrap(), Some(r));
    // Beside a reservation in a busy batch: one commit for both.
    let commits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&commits);
    let hook = move || {
        counter.fetch_add(1, Ordering::SeqCst);
        false
    };
    s.writer
        .conn
        .lock()
        .unwrap()
        .commit_hook(Some(hook))
        .unwrap();
    s.writer.forming.lock().unwrap().gap = Duration::ZERO;
    let r2 = stored_response("resp_w2", "key_i", 1_000, i64::MAX);
    let (grant, kept) = tokio::join!(s.writer.submit(reserve(3)), s.put_response(&r2));
    assert_eq!(grant.unwrap().unwrap().tokens, 3);
    kept.unwrap();
    assert_eq!(commits.load(Ordering::SeqCst), 1, "in one commit");
    assert!(s.get_response("resp_w2", 2_000).await.unwrap().is_some());
    drop((s, other));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn no_connection_of_a_wal_store_checkpoints_inside_its_commits() {
    let (s, dir) = store("autocheckpoint", Journal::Wal).await;
    let pages = |c: &rusqlite::Connection| pragma(c, "wal_autocheckpoint");
    assert_eq!(pages(&s.conn().unwrap()), 0, "reads and admin writes");
    assert_eq!(pages(&s.writer.conn.lock().unwrap()), 0, "the writer");
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_new_database_has_small_pages_and_an_old_one_keeps_its_own() {
    let (s, dir) = store("pages", Journal::Wal).await;
    let size = |c: &rusqlite::Connection| pragma(c, "page_size");
    assert_eq!(size(&s.conn().unwrap()), 1024);
    drop(s);
    // A database made before, with SQLite's default pages, is opened as is.
    let old = dir.join("old.sqlite");
    let c = rusqlite::Connection::open(&old).unwrap();
    c.execute_batch("CREATE TABLE t (x); PRAGMA journal_mode = WAL;")
        .unwrap();
    drop(c);
    let s = SqliteStore::open(&old, Options::default()).unwrap();
    assert_eq!(size(&s.conn().unwrap()), 4096);
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}
