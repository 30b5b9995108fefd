//! The native listener: every connection has deadlines, and there are never
//! more than a set number of them.
//!
//! `axum::serve` sets no timer on hyper, so a connection that sends half a
//! request head, or sits idle, stays open for good. Here each connection is
//! served by hyper-util with a timer: its header deadline runs whenever an
//! HTTP/1 connection waits for a request head, so it bounds both a slow
//! head and an idle keep-alive connection. hyper's timer starts only once
//! the protocol is known, and detecting it waits for the first 24 bytes
//! with no timer at all: so the same deadline also runs from accept to the
//! first complete request head, whatever the protocol. An HTTP/2
//! connection that answers pings but opens no stream for `idle_timeout` is
//! sent a GOAWAY. Past `max_connections` nothing more is accepted (the
//! kernel's backlog holds the rest) until one closes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// The listener's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a connection may take to send a request head, counted from
    /// when it starts waiting for one (so also its idle keep-alive time).
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in flight
    /// (HTTP/2: then a GOAWAY; HTTP/1's idle time is the header deadline's).
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long in-flight requests may run on after `shutdown`.
    pub drain: Duration,
}

/// Serve `app` on `listener` until `shutdown` resolves, then let in-flight
/// requests finish for up to `limits.drain`; `false` when the drain timed
/// out, and the connections still open were dropped (their requests settle
/// as abandoned, on the ports' detached work).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // Backpressure: wait for a free place before accepting.
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was taken: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let conn = connection(tcp, addr, app.clone(), Arc::clone(&activity), limits);
        let closed = closed.clone();
        connections.spawn(async move {
            drive(conn, activity, limits, closed).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain, drained).await.is_ok() {
        return true;
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    false
}

/// The HTTP/1 or HTTP/2 connection serving `app` on `tcp` (from `addr`),
/// reporting its requests in flight to `activity`.
fn connection(
    tcp: tokio::net::TcpStream,
    addr: std::net::SocketAddr,
    app: Router,
    activity: Arc<Activity>,
    limits: Limits,
) -> impl hyper_util::server::graceful::GracefulConnection + Send + 'static {
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let open = Open::begin(&activity);
        req.extensions_mut().insert(ConnectInfo(addr));
        let answer = app.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let resp = answer.await?;
            // The request is in flight until its answer's body is done (or
            // dropped): the guard goes with the body.
            Ok::<_, std::convert::Infallible>(resp.map(|b| {
                axum::body::Body::new(b.map_frame(move |f| {
                    let _in_flight = &open;
                    f
                }))
            }))
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    builder
        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
        .into_owned()
}

/// Serve one connection to its end: dropped (closed) if no request head is
/// complete within the header deadline of its accept; told to close
/// gracefully (GOAWAY, or close after the answer in flight) when it has
/// had no request in flight for the idle timeout, or the server shuts down.
async fn drive<C>(
    conn: C,
    activity: Arc<Activity>,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
) where
    C: hyper_util::server::graceful::GracefulConnection,
{
    let mut conn = std::pin::pin!(conn);
    // Resolves only if no request head is whole by the deadline.
    let mut first_head = std::pin::pin!(async {
        tokio::time::sleep(limits.header_timeout).await;
        if activity.seen.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    });
    let mut asked = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = &mut first_head => return,
            _ = closing.wait_for(|c| *c), if !asked => {},
            () = activity.idle(limits.idle_timeout), if !asked => {},
        }
        conn.as_mut().graceful_shutdown();
        asked = true;
    }
}

/// What a connection's requests are doing.
#[derive(Default)]
struct Activity {
    /// A whole request head has arrived.
    seen: AtomicBool,
    /// Requests whose answer is not done.
    open: AtomicUsize,
    /// Woken when the last open request ends.
    quiet: Notify,
}

impl Activity {
    /// Resolves once no request has been in flight for `after`.
    async fn idle(&self, after: Duration) {
        loop {
            let quiet = self.quiet.notified();
            if self.open.load(Ordering::Acquire) > 0 {
                quiet.await;
                continue;
            }
            let since = Instant::now();
            tokio::select! {
                () = tokio::time::sleep_until(since + after) => {
                    if self.open.load(Ordering::Acquire) == 0 {
                        return;
                    }
                }
                () = quiet => {}
            }
        }
    }
}

/// One request in flight on a connection, until dropped.
struct Open(Arc<Activity>);

impl Open {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.seen.store(true, Ordering::Release);
        activity.open.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}
