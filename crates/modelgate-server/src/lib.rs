//! ModelGate's native body: the `modelgate` server on an embedded default
//! (SQLite file + in-process limiter), or on PostgreSQL and Redis for
//! replicas, and its admin CLI.
//!
//! # Layout
//! - `settings`: `MG_*` variables and the models file (file IO at start).
//! - `compose`: the store, counters and limiter the settings name.
//! - `modelgate_native` (a crate shared with the Lambda): the ports and the
//!   axum shell; here it gets a socket.
//! - `cli`: key/model/usage commands run against the local database
//!   through the same admin API.

pub mod cli;
pub mod compose;
pub mod settings;

use modelgate_core::Gateway;
use modelgate_core::ports::{Accounting, Ports, RateLimiter, Store};
use tokio::net::TcpListener;

use crate::settings::Settings;
use modelgate_compose::Job;
use modelgate_native::app;
use modelgate_native::ports::NativePorts;

/// `GET /metrics` without a key on its own address (the operator's choice
/// of a private one), with the main listener's bounds.
async fn serve_metrics(
    at: std::net::SocketAddr,
    limits: modelgate_native::listener::Limits,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = TcpListener::bind(at)
        .await
        .map_err(|e| format!("bind MG_METRICS_LISTEN {at}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "metrics listening");
    println!("Metrics on http://{addr}/metrics");
    Ok(tokio::spawn(async move {
        let app = modelgate_native::app::metrics_router();
        modelgate_native::listener::serve(listener, app, limits, std::future::pending()).await;
    }))
}

/// Serve until SIGINT/SIGTERM, then drain in-flight requests for up to 30 s.
pub async fn serve(settings: Settings) -> Result<(), String> {
    modelgate_native::metrics::install().map_err(|e| format!("metrics: {e}"))?;
    compose::with_gateway(&settings, Serve(&settings)).await
}

/// The server, on whatever ports the settings compose.
struct Serve<'a>(&'a Settings);

impl Job for Serve<'_> {
    type Output = ();

    async fn run<S: Store, A: Accounting, L: RateLimiter>(
        self,
        gateway: Gateway<NativePorts<S, A, L>>,
    ) -> Result<(), String> {
        serve_gateway(self.0, gateway).await
    }
}

async fn serve_gateway<S: Store, A: Accounting, L: RateLimiter>(
    settings: &Settings,
    gateway: Gateway<NativePorts<S, A, L>>,
) -> Result<(), String> {
    // Requests a previous process left behind (killed mid-request): their
    // leases may have run out while nothing was running.
    match gateway.expire_leases().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(settled = n, "settled requests whose leases expired"),
        Err(e) => tracing::warn!(error = %e, "looking for expired leases failed"),
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", settings.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if settings.core.admin_key_hash.is_none() {
        tracing::warn!(
            "MG_ADMIN_API_KEY is not set: the admin API accepts only stored admin keys (create one with `modelgate keys create --admin`)"
        );
    }
    for name in modelgate_native::upstream::proxy_variables_set(|k| std::env::var(k).ok()) {
        tracing::warn!(
            "{name} is set, but upstreams are called directly: a proxy would resolve their names past the egress policy"
        );
    }
    let store = compose::store_name(settings);
    tracing::info!(%addr, %store, redis = settings.redis_url.is_some(), "ModelGate listening");
    println!("ModelGate listening on http://{addr}  (OpenAI base_url: http://{addr}/v1)");
    let detached = gateway.ports().detached().clone();
    let checks = tokio::spawn(readiness_checks(gateway.clone()));
    let metrics = match settings.metrics_listen {
        Some(at) => Some(serve_metrics(at, settings.listener).await?),
        None => None,
    };
    let app = app::router(app::AppState {
        gateway,
        peer_ip: app::socket_peer,
        admin_dir: settings.admin_dir.clone(),
    });
    let stopping = async {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
    };
    if !modelgate_native::listener::serve(listener, app, settings.listener, stopping).await {
        tracing::warn!("drain timed out: requests still in flight were settled as abandoned");
    }
    checks.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    // Settlements of abandoned requests run detached: let them land.
    detached.close();
    if tokio::time::timeout(std::time::Duration::from_secs(10), detached.wait())
        .await
        .is_err()
    {
        tracing::error!("settlements still pending at exit: their leases will release them");
    }
    Ok(())
}

/// `GET /health` on the server listening at `listen` (its loopback
/// address when it listens on all of them), in at most 3 s: what a
/// container's `HEALTHCHECK` runs, in an image with no shell or curl.
pub fn health(listen: std::net::SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut at = listen;
    if at.ip().is_unspecified() {
        at.set_ip(if at.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let limit = std::time::Duration::from_secs(3);
    let mut conn = std::net::TcpStream::connect_timeout(&at, limit).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    conn.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).map_err(|e| e.to_string())?;
    match &head {
        b"HTTP/1.0 200" | b"HTTP/1.1 200" => Ok(()),
        other => Err(format!(
            "/health answered {}",
            String::from_utf8_lossy(other)
        )),
    }
}

/// Check the deployments that ask for it, every
/// `MG_HEALTH_CHECK_INTERVAL_SECS`, for as long as the server runs.
async fn readiness_checks<P: Ports>(gateway: Gateway<P>) {
    let every = gateway.config().resilience.health_check_interval_ms;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = gateway.check_deployments().await {
            tracing::warn!(error = %e, "readiness checks could not list the models");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
