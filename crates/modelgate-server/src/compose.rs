//! The native server's ports as the settings compose them:
//!
//! | settings                          | store      | counters   | limiter    |
//! |-----------------------------------|------------|------------|------------|
//! | (default)                         | SQLite     | SQLite     | in process |
//! | `MG_REDIS_URL`                    | SQLite     | Redis      | Redis      |
//! | `MG_DATABASE_URL`                 | PostgreSQL | PostgreSQL | PostgreSQL |
//! | `MG_DATABASE_URL`, `MG_REDIS_URL` | PostgreSQL | Redis      | Redis      |
//! | `MG_DYNAMODB_TABLE`, `MG_REDIS_URL` | DynamoDB | Redis      | Redis      |
//!
//! Every row but the first is exact across replicas: each counter moves in
//! one statement or one script of the shared service. A [`Job`] runs on the
//! gateway whichever row was chosen.

use std::sync::Arc;

use modelgate_core::config::ModelSpec;
use modelgate_core::ports::{Accounting, RateLimiter, Store};
use modelgate_core::{Config, Gateway};
use modelgate_dynamodb::DynamoStore;
use modelgate_native::ports::{Fold, NativePorts};
use modelgate_native::upstream::UpstreamHttp;
use modelgate_postgres::PgStore;
use modelgate_redis::{RedisCounters, RedisLimiter};
use modelgate_sqlite::SqliteStore;

use crate::settings::{self, Settings};

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

/// Which store the settings name, for the log (never its URL).
pub fn store_name(settings: &Settings) -> String {
    if settings.database_url.is_some() {
        "postgres".into()
    } else if let Some(table) = &settings.dynamodb_table {
        format!("dynamodb:{table}")
    } else {
        settings.db_path.display().to_string()
    }
}

/// Open the store the settings name (applying its migrations), build the
/// gateway (applying the models file, if any) and run `job` on it.
pub async fn with_gateway<J: Job>(settings: &Settings, job: J) -> Result<J::Output, String> {
    let mut core = settings.core.clone();
    let specs = match &settings.models_file {
        Some(path) => settings::load_models_file(path, |k| std::env::var(k).ok(), &mut core)?,
        None => vec![],
    };
    let http = UpstreamHttp::new(&core).map_err(|e| format!("HTTP client: {e}"))?;
    let redis = settings.redis_url.as_ref().map(|u| u.expose().to_owned());
    if let Some(table) = &settings.dynamodb_table {
        // Settings refuse DynamoDB without Redis: it has no limiter.
        let url = redis.ok_or("MG_DYNAMODB_TABLE needs MG_REDIS_URL")?;
        let store = open_dynamodb(settings, table).await;
        return run(job, in_redis(http, store, &url)?, core, specs).await;
    }
    match &settings.database_url {
        None => {
            let store = open_sqlite(settings)?;
            match redis {
                None => run(job, NativePorts::new(http, store), core, specs).await,
                Some(url) => run(job, in_redis(http, store, &url)?, core, specs).await,
            }
        }
        Some(url) => {
            let store = open_postgres(settings, url.expose()).await?;
            match redis {
                None => {
                    // The limiter and the counters are both the database's:
                    // a request's rate step carries its reservation.
                    let limiter = store.clone();
                    let fold = Fold::of(Arc::new(store.clone()));
                    let ports = NativePorts::with_limiter(http, store, limiter).with_fold(fold);
                    run(job, ports, core, specs).await
                }
                Some(url) => run(job, in_redis(http, store, &url)?, core, specs).await,
            }
        }
    }
}

/// Apply the migrations the settings' store lacks: their names.
pub async fn migrate(settings: &Settings) -> Result<Vec<&'static str>, String> {
    if let Some(table) = &settings.dynamodb_table {
        // Its one table, created when missing (deployments may create it
        // themselves, e.g. with the SAM template).
        let store = open_dynamodb(settings, table).await;
        store
            .ensure_table()
            .await
            .map_err(|e| format!("dynamodb: {e}"))?;
        return Ok(vec![]);
    }
    match &settings.database_url {
        // Opening a SQLite file migrates it.
        None => open_sqlite(settings).map(|_| vec![]),
        Some(url) => {
            let opts = postgres_options(settings);
            let store = PgStore::new(url.expose(), opts).map_err(|e| format!("database: {e}"))?;
            store.migrate().await.map_err(|e| format!("database: {e}"))
        }
    }
}

fn open_sqlite(settings: &Settings) -> Result<SqliteStore, String> {
    let opts = modelgate_sqlite::Options {
        journal: settings.journal,
        wal_max_bytes: settings.wal_max_bytes,
        ..Default::default()
    };
    SqliteStore::open(&settings.db_path, opts)
        .map_err(|e| format!("database {}: {e}", settings.db_path.display()))
}

fn postgres_options(settings: &Settings) -> modelgate_postgres::Options {
    modelgate_postgres::Options {
        pool_size: settings.database_pool,
        ..Default::default()
    }
}

async fn open_postgres(settings: &Settings, url: &str) -> Result<PgStore, String> {
    PgStore::open(url, postgres_options(settings))
        .await
        .map_err(|e| format!("database: {e}"))
}

/// The table in the account, region and endpoint of the AWS environment
/// (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials chain).
async fn open_dynamodb(settings: &Settings, table: &str) -> DynamoStore {
    let config = DynamoStore::config_loader(settings.dynamodb_timeout);
    DynamoStore::new(&config.load().await, table)
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
    // reservation.
    let fold = Fold::of(Arc::clone(&counters));
    Ok(NativePorts::compose(http, store, counters, limiter).with_fold(fold))
}

async fn run<J: Job, S: Store, A: Accounting, L: RateLimiter>(
    job: J,
    ports: NativePorts<S, A, L>,
    core: Config,
    specs: Vec<ModelSpec>,
) -> Result<J::Output, String> {
    let gateway = Gateway::new(ports, core);
    if !specs.is_empty() {
        let (created, updated) = gateway
            .apply_model_specs(specs)
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
