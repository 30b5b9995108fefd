//! ModelGate on AWS Lambda behind a Function URL (`InvokeMode:
//! RESPONSE_STREAM`): the same axum shell as the native server, served by
//! `lambda_http`'s streaming runtime, so SSE reaches the client chunk by
//! chunk.
//!
//! # Layout
//! - `main.rs`: read `MG_*` settings into a plan of the composition root,
//!   which builds the ports once per instance (reused by every invocation),
//!   and run.
//! - `aws.rs`: the AWS clients (DynamoDB, Secrets Manager), configured once.
//!
//! The IO lives in the shared crates, wired by the composition root the
//! native server uses too (`modelgate-compose`): the store is SQLite on EFS
//! (`modelgate-sqlite`, rollback journal, busy timeout) or DynamoDB
//! (`modelgate-dynamodb`), chosen by `MG_STORE`; rate limits and quota
//! reservations are counters in Redis shared by every instance
//! (`modelgate-redis`); the upstream client is hyper's (`modelgate-native`).
//!
//! Redis is required: without `MG_REDIS_URL` the function does not start,
//! and when Redis is unreachable requests get a 503, never unlimited access.

mod aws;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use modelgate_compose::{Job, Plan, StoreSpec};
use modelgate_core::ports::{Accounting, RateLimiter, Store};
use modelgate_core::{Config, Gateway};
use modelgate_native::app::{AppState, router};
use modelgate_native::ports::NativePorts;
use modelgate_sqlite::{Journal, Options};
use opentelemetry_sdk::trace::SdkTracerProvider;

type Error = lambda_http::Error;

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The caller's address as the Function URL saw it (`requestContext.http.
/// sourceIp`): `X-Forwarded-For` there starts with whatever the client
/// wrote, so it counts only through `MG_TRUSTED_PROXY_HOPS`, as anywhere.
fn source_ip(extensions: &lambda_http::http::Extensions) -> Option<IpAddr> {
    match extensions.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref()?.parse().ok(),
        _ => None,
    }
}

/// Pause before polling the Runtime API again after it failed.
const RUNTIME_RETRY: Duration = Duration::from_millis(100);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let started = std::time::Instant::now();
    let traces = modelgate_native::otel::init_logging(true, true)?;
    let store = setting("MG_STORE").unwrap_or_else(|| "sqlite".into());
    let secrets_arn = setting("MG_SECRETS_ARN");
    // Only load the AWS configuration when it is used: it costs cold start.
    let aws = if store == "dynamodb" || secrets_arn.is_some() {
        let timeout = setting("MG_DYNAMODB_TIMEOUT_MS");
        let timeout = modelgate_dynamodb::DynamoStore::timeout_setting(timeout.as_deref())
            .map_err(|why| format!("bad setting MG_DYNAMODB_TIMEOUT_MS: {why}"))?;
        Some(aws::Aws::from_env(timeout).await)
    } else {
        None
    };
    let secrets = match (&aws, secrets_arn) {
        (Some(aws), Some(arn)) => aws.secrets(&arn).await?,
        _ => HashMap::new(),
    };
    let redis = setting("MG_REDIS_URL")
        .ok_or("MG_REDIS_URL is required: limits and quotas are shared through Redis")?;
    let store = match (store.as_str(), aws) {
        ("sqlite", _) => {
            // EFS is NFS: no WAL (its shared memory is not safe there);
            // writers from several instances wait for each other through
            // the busy timeout.
            let db = setting("MG_DB_PATH").unwrap_or_else(|| "/mnt/efs/modelgate.db".into());
            let options = Options {
                journal: Journal::Delete,
                busy_timeout: Duration::from_secs(10),
                ..Options::default()
            };
            StoreSpec::Sqlite {
                path: db.into(),
                options,
            }
        }
        ("dynamodb", Some(aws)) => {
            let table = setting("MG_DYNAMODB_TABLE")
                .ok_or("MG_DYNAMODB_TABLE is required with MG_STORE=dynamodb")?;
            StoreSpec::Dynamodb(aws.dynamodb(table))
        }
        (other, _) => {
            return Err(format!("MG_STORE must be sqlite or dynamodb, not {other:?}").into());
        }
    };
    let lookup = |name: &str| secrets.get(name).cloned().or_else(|| setting(name));
    let mut config = Config::from_lookup(lookup).map_err(|e| format!("bad setting {e}"))?;
    // Every name in the Secrets Manager secret is declared for models to
    // use, but for the gateway's own settings kept there too (MG_*), which
    // `declare_secret` refuses.
    for name in secrets.keys() {
        let _ = config.declare_secret(name);
    }
    let plan = Plan {
        store,
        redis: Some(redis.into()),
        secrets,
        // A function runs no local MCP servers.
        local_programs: Default::default(),
    };
    let job = Run { started, traces };
    Ok(plan.run(config, vec![], job).await?)
}

/// The function, on the ports the plan composed.
struct Run {
    started: std::time::Instant,
    traces: Option<SdkTracerProvider>,
}

impl Job for Run {
    type Output = ();

    async fn run<S: Store, A: Accounting, L: RateLimiter>(
        self,
        gateway: Gateway<NativePorts<S, A, L>>,
    ) -> Result<(), String> {
        let mut app = router(AppState {
            gateway,
            peer_ip: source_ip,
            admin_dir: setting("MG_ADMIN_DIR")
                .unwrap_or_else(|| "admin".into())
                .into(),
        });
        if let Some(provider) = self.traces {
            app = modelgate_native::otel::flush_after_each(app, provider);
        }
        // The init part of a cold start (Lambda adds the process start).
        let init_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(init_ms, "ready");
        // A failed exchange with the Runtime API (a response the platform
        // would not take because its client went away, a dropped
        // connection) ends `run`: poll for the next invocation again rather
        // than exit, which would throw away the warm instance (and, under
        // `cargo lambda watch`, the only one).
        loop {
            match lambda_http::run_with_streaming_response(app.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::error!(error = %e, "runtime API exchange failed: polling again");
                    tokio::time::sleep(RUNTIME_RETRY).await;
                }
            }
        }
    }
}
