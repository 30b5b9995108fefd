//! ModelGate on AWS Lambda behind a Function URL (`InvokeMode:
//! RESPONSE_STREAM`): the same axum shell as the native server, served by
//! `lambda_http`'s streaming runtime, so SSE reaches the client chunk by
//! chunk.
//!
//! # Layout
//! One file: read `MG_*` settings, build the ports once per instance
//! (reused by every invocation), run. The IO lives in the shared crates:
//! SQLite on EFS (`modelgate-sqlite`, rollback journal, busy timeout),
//! Redis for limits shared by every instance (`modelgate-redis`), reqwest
//! upstream (`modelgate-native`).
//!
//! Redis is required: without `MG_REDIS_URL` the function does not start,
//! and when Redis is unreachable requests get a 503, never unlimited access.

use std::time::Duration;

use modelgate_core::{Config, Gateway};
use modelgate_native::app::{AppState, router};
use modelgate_native::ports::{NativePorts, ReqwestHttp};
use modelgate_redis::RedisLimiter;
use modelgate_sqlite::{Journal, Options, SqliteStore};

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MG_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::from_lookup(setting).map_err(|e| format!("bad setting {e}"))?;
    let redis = setting("MG_REDIS_URL")
        .ok_or("MG_REDIS_URL is required: limits are shared through Redis")?;
    // EFS is NFS: no WAL (its shared memory is not safe there); writers from
    // several instances wait for each other through the busy timeout.
    let db = setting("MG_DB_PATH").unwrap_or_else(|| "/mnt/efs/modelgate.db".into());
    let store = SqliteStore::open(
        &db,
        Options {
            journal: Journal::Delete,
            busy_timeout: Duration::from_secs(10),
        },
    )
    .map_err(|e| format!("database {db}: {e}"))?;
    let limiter = RedisLimiter::new(&redis).map_err(|e| e.to_string())?;
    let http = ReqwestHttp::new()?;
    let gateway = Gateway::new(NativePorts::with_limiter(http, store, limiter), config);
    let app = router(AppState {
        gateway,
        // Function URLs put the caller's address in X-Forwarded-For.
        trust_forwarded_for: true,
        admin_dir: setting("MG_ADMIN_DIR")
            .unwrap_or_else(|| "admin".into())
            .into(),
    });
    lambda_http::run_with_streaming_response(app).await
}
