//! The server's settings as a [`Plan`] of the composition root
//! (`modelgate-compose`, shared with the Lambda), and the migrations of the
//! store they name.

use modelgate_compose::{Job, Plan, StoreSpec};
use modelgate_dynamodb::DynamoStore;
use modelgate_postgres::PgStore;

use crate::settings::{self, Settings};

/// The plan the settings name: the store (PostgreSQL, DynamoDB or the
/// SQLite file), and Redis if set.
pub async fn plan(settings: &Settings) -> Plan {
    let store = if let Some(table) = &settings.dynamodb_table {
        StoreSpec::Dynamodb(open_dynamodb(settings, table).await)
    } else if let Some(url) = &settings.database_url {
        StoreSpec::Postgres {
            url: url.clone(),
            options: postgres_options(settings),
        }
    } else {
        StoreSpec::Sqlite {
            path: settings.db_path.clone(),
            options: sqlite_options(settings),
        }
    };
    Plan {
        store,
        redis: settings.redis_url.clone(),
        secrets: Default::default(),
        local_programs: settings.mcp_commands.clone(),
    }
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
    plan(settings).await.run(core, specs, job).await
}

/// Apply the migrations the settings' store lacks: their names.
pub async fn migrate(settings: &Settings) -> Result<Vec<&'static str>, String> {
    match plan(settings).await.store {
        // Its one table, created when missing (deployments may create it
        // themselves, e.g. with the SAM template).
        StoreSpec::Dynamodb(store) => {
            store
                .ensure_table()
                .await
                .map_err(|e| format!("dynamodb: {e}"))?;
            Ok(vec![])
        }
        StoreSpec::Postgres { url, options } => {
            let store =
                PgStore::new(url.expose(), options).map_err(|e| format!("database: {e}"))?;
            store.migrate().await.map_err(|e| format!("database: {e}"))
        }
        // Opening a SQLite file migrates it.
        StoreSpec::Sqlite { path, options } => modelgate_sqlite::SqliteStore::open(&path, options)
            .map(|_| vec![])
            .map_err(|e| format!("database {}: {e}", path.display())),
    }
}

fn sqlite_options(settings: &Settings) -> modelgate_sqlite::Options {
    modelgate_sqlite::Options {
        journal: settings.journal,
        wal_max_bytes: settings.wal_max_bytes,
        ..Default::default()
    }
}

fn postgres_options(settings: &Settings) -> modelgate_postgres::Options {
    modelgate_postgres::Options {
        pool_size: settings.database_pool,
        ..Default::default()
    }
}

/// The table in the account, region and endpoint of the AWS environment
/// (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials chain).
async fn open_dynamodb(settings: &Settings, table: &str) -> DynamoStore {
    let config = DynamoStore::config_loader(settings.dynamodb_timeout);
    DynamoStore::new(&config.load().await, table)
}
