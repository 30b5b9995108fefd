//! The composition root: one place that turns what a deployment names (a
//! [`Plan`]) into the gateway's ports, for the native server and the
//! Lambda alike (the Worker composes its bindings in its own crate, on the
//! core alone):
//!
//! | plan                          | store      | counters   | limiter    |
//! |-------------------------------|------------|------------|------------|
//! | SQLite                        | SQLite     | SQLite     | in process |
//! | SQLite, Redis                 | SQLite     | Redis      | Redis      |
//! | PostgreSQL                    | PostgreSQL | PostgreSQL | PostgreSQL |
//! | PostgreSQL, Redis             | PostgreSQL | Redis      | Redis      |
//! | DynamoDB, Redis               | DynamoDB   | Redis      | Redis      |
//!
//! Every row but the first is exact across replicas: each counter moves in
//! one statement or one script of the shared service. A [`Job`] runs on the
//! gateway whichever row was chosen.
//!
//! # Layout
//! One module: it reads nothing from the environment (its callers do) and
//! imports only the stores, the native ports and the core.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use modelgate_core::config::ModelSpec;
use modelgate_core::ports::{Accounting, RateLimiter, Store};
use modelgate_core::secret::Secret;
use modelgate_core::{Config, Gateway};
use modelgate_dynamodb::DynamoStore;
use modelgate_native::ports::{Fold, NativePorts};
use modelgate_native::upstream::UpstreamHttp;
use modelgate_redis::{RedisCounters, RedisLimiter};
use modelgate_sqlite::SqliteStore;

/// Where the records live.
pub enum StoreSpec {
    /// A SQLite file (opening it applies its migrations).
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Journal, busy timeout, WAL bound.
        options: modelgate_sqlite::Options,
    },
    /// A PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres {
        /// `postgres://...` (a secret: it may hold a password).
        url: Secret,
        /// Its pool.
        options: modelgate_postgres::Options,
    },
    /// A DynamoDB table, its client configured by the caller.
    Dynamodb(DynamoStore),
}

/// What a deployment names: the store, the Redis that holds limits and
/// counters (if any), and secrets looked up before the environment.
pub struct Plan {
    /// The store.
    pub store: StoreSpec,
    /// `redis://...`: counters and the limiter shared by every instance.
    pub redis: Option<Secret>,
    /// Secrets loaded at start (e.g. from AWS Secrets Manager).
    pub secrets: HashMap<String, String>,
    /// The programs local (stdio) MCP servers may run (none: no local
    /// server).
    pub local_programs: BTreeSet<String>,
}

/// What a command does with the gateway, whatever its ports.
pub trait Job {
    /// What it answers.
    type Output;
    /// Run on `gateway`.
    fn run<S: Store, A: Accounting, L: RateLimiter>(
        self,
        gateway: Gateway<NativePorts<S, A, L>>,
    ) -> impl Future<Output = Result<Self::Output, String>>;
}

impl Plan {
    /// Open the store (applying its migrations), build the gateway on
    /// `core` (applying the models file's `specs`, if any) and run `job`.
    pub async fn run<J: Job>(
        self,
        core: Config,
        specs: Vec<ModelSpec>,
        job: J,
    ) -> Result<J::Output, String> {
        let http = UpstreamHttp::new(&core)
            .map_err(|e| format!("HTTP client: {e}"))?
            .with_local_programs(self.local_programs);
        let redis = self.redis.as_ref().map(|u| u.expose().to_owned());
        let secrets = self.secrets;
        let to = Target {
            core,
            specs,
            secrets,
        };
        match (self.store, redis) {
            (StoreSpec::Sqlite { path, options }, redis) => {
                let store = SqliteStore::open(&path, options)
                    .map_err(|e| format!("database {}: {e}", path.display()))?;
                match redis {
                    None => to.run(job, NativePorts::new(http, store)).await,
                    Some(url) => to.run(job, in_redis(http, store, &url)?).await,
                }
            }
            #[cfg(feature = "postgres")]
            (StoreSpec::Postgres { url, options }, redis) => {
                let store = modelgate_postgres::PgStore::open(url.expose(), options)
                    .await
                    .map_err(|e| format!("database: {e}"))?;
                match redis {
                    None => {
                        // The limiter and the counters are both the
                        // database's: a request's rate step carries its
                        // reservation.
                        let limiter = store.clone();
                        let fold = Fold::of(Arc::new(store.clone()));
                        let ports = NativePorts::with_limiter(http, store, limiter).with_fold(fold);
                        to.run(job, ports).await
                    }
                    Some(url) => to.run(job, in_redis(http, store, &url)?).await,
                }
            }
            (StoreSpec::Dynamodb(store), Some(url)) => {
                to.run(job, in_redis(http, store, &url)?).await
            }
            (StoreSpec::Dynamodb(_), None) => {
                Err("DynamoDB needs Redis: it holds the records, Redis the limits".into())
            }
        }
    }
}

/// What every row of the table ends in.
struct Target {
    core: Config,
    specs: Vec<ModelSpec>,
    secrets: HashMap<String, String>,
}

impl Target {
    async fn run<J: Job, S: Store, A: Accounting, L: RateLimiter>(
        self,
        job: J,
        ports: NativePorts<S, A, L>,
    ) -> Result<J::Output, String> {
        let gateway = Gateway::new(ports.with_secrets(self.secrets), self.core);
        if !self.specs.is_empty() {
            let (created, updated) = gateway
                .apply_model_specs(self.specs)
                .await
                .map_err(|e| format!("models file: {e}"))?;
            tracing::info!(
                created = created.len(),
                updated = updated.len(),
                "models file applied"
            );
        }
        job.run(gateway).await
    }
}

/// `store` with its counters and the limiter in the Redis at `url`.
fn in_redis<S: Store>(
    http: UpstreamHttp,
    store: S,
    url: &str,
) -> Result<NativePorts<S, Arc<RedisCounters<S>>, RedisLimiter>, String> {
    let store = Arc::new(store);
    let counters =
        RedisCounters::new(Arc::clone(&store), url).map_err(|e| format!("redis: {e}"))?;
    let counters = Arc::new(counters);
    let limiter = RedisLimiter::new(url).map_err(|e| format!("redis: {e}"))?;
    // The limiter is in the same Redis: a request's rate step carries its
    // reservation (one round trip).
    let fold = Fold::of(Arc::clone(&counters));
    Ok(NativePorts::compose(http, store, counters, limiter).with_fold(fold))
}
