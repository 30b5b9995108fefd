//! The native listener: every connection has deadlines, and there are never
//! more than a set number of them.
//!
//! `axum::serve` sets no timer on hyper, so a connection that sends half a
//! request head, or sits idle, stays open for good. Here each connection is
//! served by hyper-util with a timer: its header deadline runs whenever the
//! connection waits for a request head, so it bounds both a slow head and an
//! idle keep-alive connection. Past `max_connections` nothing more is
//! accepted (the kernel's backlog holds the rest) until one closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The listener's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a connection may take to send a request head, counted from
    /// when it starts waiting for one (so also its idle keep-alive time).
    pub header_timeout: Duration,
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
    let graceful = GracefulShutdown::new();
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
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            app.clone().oneshot(req.map(axum::body::Body::new))
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
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_ok()
    {
        return true;
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    false
}
