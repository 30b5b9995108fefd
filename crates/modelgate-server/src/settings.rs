//! Native settings from `MG_*` variables, on top of the core's [`Config`],
//! and the declarative models file.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use modelgate_core::backend::{MessagesApi, ResponsesApi};
use modelgate_core::config::{ConfigError, ModelSpec, SyncBackend};
use modelgate_core::cost::Prices;
use modelgate_core::deployment::Deployment;
use modelgate_core::secret::Secret;
use modelgate_core::{BackendKind, Config};
use serde::Deserialize;

/// Everything the native server reads at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address (`MG_HOST`:`MG_PORT`, default 127.0.0.1:18080).
    pub listen: SocketAddr,
    /// SQLite file (`MG_DB_PATH`, default ./data/modelgate.db).
    pub db_path: PathBuf,
    /// `MG_SQLITE_JOURNAL`: `wal` (default) or `delete` (network disks).
    pub journal: modelgate_sqlite::Journal,
    /// `MG_SQLITE_WAL_MAX_MB`: the WAL's hard bound (default 64).
    pub wal_max_bytes: u64,
    /// `MG_DATABASE_URL` (`postgres://...`): PostgreSQL instead of the
    /// SQLite file, for replicas sharing one database.
    pub database_url: Option<Secret>,
    /// `MG_DYNAMODB_TABLE`: the keys, models and usage in this DynamoDB
    /// table (AWS settings from the environment); needs `MG_REDIS_URL`.
    pub dynamodb_table: Option<String>,
    /// `MG_DYNAMODB_TIMEOUT_MS`: how long a DynamoDB operation may take,
    /// retries included (default 5,000).
    pub dynamodb_timeout: Duration,
    /// `MG_DATABASE_POOL`: connections per process to PostgreSQL (default
    /// 16).
    pub database_pool: usize,
    /// `MG_REDIS_URL`: the rate limiter and the quota and budget counters
    /// in Redis, shared by every replica.
    pub redis_url: Option<Secret>,
    /// `MG_MODELS_FILE`: a TOML file of models applied at start.
    pub models_file: Option<PathBuf>,
    /// `MG_HEADER_TIMEOUT_SECS` (default 30), `MG_IDLE_TIMEOUT_SECS`
    /// (default 60) and `MG_MAX_CONNECTIONS` (default 4096): the
    /// listener's bounds.
    pub listener: modelgate_native::listener::Limits,
    /// `MG_ADMIN_DIR`: the admin panel's folder (default ./admin).
    pub admin_dir: PathBuf,
    /// `MG_LOG_FORMAT`: `text` (default) or `json`.
    pub log_json: bool,
    /// `MG_METRICS_LISTEN`: an address serving `GET /metrics` without a
    /// key (e.g. `127.0.0.1:9464`, for a scraper on a private network);
    /// unset, metrics are only at the main address, for admin keys.
    pub metrics_listen: Option<SocketAddr>,
    /// `MG_MCP_COMMANDS`: the programs local (stdio) MCP servers may run,
    /// as their commands name them (`node,/usr/bin/python3`); unset, none.
    pub mcp_commands: BTreeSet<String>,
    /// The core's settings.
    pub core: Config,
}

/// The settings as `from_lookup` reads them: trimmed, empty is unset.
struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn val(&self, k: &str) -> Option<String> {
        (self.0)(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A whole number, 1 or more (`default` when unset).
    fn count(&self, k: &str, default: u64) -> Result<u64, ConfigError> {
        self.val(k).map_or(Ok(default), |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad(k, "must be a whole number, 1 or more"))
        })
    }

    /// A URL that must start with one of `schemes`.
    fn url(&self, k: &str, schemes: &[&str], why: &str) -> Result<Option<String>, ConfigError> {
        match self.val(k) {
            Some(u) if !schemes.iter().any(|s| u.starts_with(s)) => Err(bad(k, why)),
            v => Ok(v),
        }
    }
}

fn bad(var: &str, why: &str) -> ConfigError {
    ConfigError {
        var: var.into(),
        why: why.into(),
    }
}

impl Settings {
    /// Read from `get` (the process environment in `main`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let core = Config::from_lookup(&get)?;
        let env = Env(get);
        let host = env.val("MG_HOST").unwrap_or_else(|| "127.0.0.1".into());
        let port = env.val("MG_PORT").unwrap_or_else(|| "18080".into());
        let listen = format!("{host}:{port}")
            .parse::<SocketAddr>()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .map_err(|_| bad("MG_HOST/MG_PORT", "not an IP address and port"))?;
        let listener = modelgate_native::listener::Limits {
            header_timeout: Duration::from_secs(env.count("MG_HEADER_TIMEOUT_SECS", 30)?),
            idle_timeout: Duration::from_secs(env.count("MG_IDLE_TIMEOUT_SECS", 60)?),
            max_connections: usize::try_from(env.count("MG_MAX_CONNECTIONS", 4096)?)
                .unwrap_or(usize::MAX),
            drain: Duration::from_secs(30),
        };
        let (journal, wal_max_mb) = sqlite_settings(&env)?;
        let database_url = env.url(
            "MG_DATABASE_URL",
            &["postgres://", "postgresql://"],
            "must be a postgres:// URL",
        )?;
        let redis_url = env.url(
            "MG_REDIS_URL",
            &["redis://", "rediss://"],
            "must be a redis:// URL",
        )?;
        let dynamodb_table = env.val("MG_DYNAMODB_TABLE");
        let dynamodb_timeout = env.val("MG_DYNAMODB_TIMEOUT_MS");
        let dynamodb_timeout =
            modelgate_dynamodb::DynamoStore::timeout_setting(dynamodb_timeout.as_deref())
                .map_err(|why| bad("MG_DYNAMODB_TIMEOUT_MS", why))?;
        if dynamodb_table.is_some() {
            if database_url.is_some() {
                return Err(bad(
                    "MG_DYNAMODB_TABLE",
                    "one store: MG_DATABASE_URL or MG_DYNAMODB_TABLE, not both",
                ));
            }
            if redis_url.is_none() {
                return Err(bad(
                    "MG_DYNAMODB_TABLE",
                    "needs MG_REDIS_URL: DynamoDB holds the records, Redis the limits",
                ));
            }
        }
        Ok(Self {
            listen,
            listener,
            database_url: database_url.map(Secret::from),
            dynamodb_table,
            dynamodb_timeout,
            database_pool: usize::try_from(env.count("MG_DATABASE_POOL", 16)?)
                .unwrap_or(usize::MAX),
            redis_url: redis_url.map(Secret::from),
            db_path: env
                .val("MG_DB_PATH")
                .unwrap_or_else(|| "./data/modelgate.db".into())
                .into(),
            journal,
            wal_max_bytes: wal_max_mb << 20,
            models_file: env.val("MG_MODELS_FILE").map(PathBuf::from),
            admin_dir: env
                .val("MG_ADMIN_DIR")
                .unwrap_or_else(|| "./admin".into())
                .into(),
            log_json: env.val("MG_LOG_FORMAT").as_deref() == Some("json"),
            metrics_listen: env
                .val("MG_METRICS_LISTEN")
                .map(|a| a.parse::<SocketAddr>())
                .transpose()
                .map_err(|_| bad("MG_METRICS_LISTEN", "not an IP address and port"))?,
            mcp_commands: list(env.val("MG_MCP_COMMANDS")),
            core,
        })
    }
}

/// A comma-separated list's entries.
fn list(value: Option<String>) -> BTreeSet<String> {
    let value = value.unwrap_or_default();
    let entries = value.split(',').map(str::trim).filter(|p| !p.is_empty());
    entries.map(str::to_owned).collect()
}

/// The SQLite file's journal and WAL bound (MiB).
fn sqlite_settings(
    env: &Env<impl Fn(&str) -> Option<String>>,
) -> Result<(modelgate_sqlite::Journal, u64), ConfigError> {
    let journal = match env.val("MG_SQLITE_JOURNAL").as_deref() {
        None | Some("wal") => modelgate_sqlite::Journal::Wal,
        Some("delete") => modelgate_sqlite::Journal::Delete,
        Some(_) => return Err(bad("MG_SQLITE_JOURNAL", "must be 'wal' or 'delete'")),
    };
    let wal_max_mb = match env.val("MG_SQLITE_WAL_MAX_MB") {
        None => 64,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=1 << 20).contains(n))
            .ok_or_else(|| {
                bad(
                    "MG_SQLITE_WAL_MAX_MB",
                    "must be a whole number of MiB, 1 or more",
                )
            })?,
    };
    Ok((journal, wal_max_mb))
}

/// A models file: `[[models]]` entries and optional `[[sync_backends]]`.
/// Upstream keys are named by environment variable (`api_key_env`), so the
/// file itself holds no secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelsFile {
    #[serde(default)]
    models: Vec<FileModel>,
    #[serde(default)]
    sync_backends: Vec<FileBackend>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    name: String,
    #[serde(default)]
    backend: Option<BackendKind>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    upstream_model: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    fallback_urls: Vec<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    stream_usage: Option<bool>,
    #[serde(default)]
    responses_api: Option<ResponsesApi>,
    #[serde(default)]
    messages_api: Option<MessagesApi>,
    #[serde(default)]
    deployments: Vec<FileDeployment>,
    #[serde(default)]
    prices: Option<Prices>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDeployment {
    #[serde(default)]
    name: String,
    backend: BackendKind,
    base_url: String,
    #[serde(default)]
    upstream_model: String,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    priority: u32,
    #[serde(default)]
    health_check: bool,
    #[serde(default)]
    prices: Option<Prices>,
    #[serde(default)]
    first_byte_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackend {
    backend: BackendKind,
    base_url: String,
    #[serde(default)]
    api_key_env: Option<String>,
}

/// Read a models file into specs. An `api_key_env` is stored as the
/// reference `env:NAME` (never the plaintext) and declared as an upstream
/// secret in `core` (the file is the operator's); it must be set now, in
/// `get`. The file's sync backends join `core`'s.
pub fn load_models_file(
    path: &Path,
    get: impl Fn(&str) -> Option<String>,
    core: &mut Config,
) -> Result<Vec<ModelSpec>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: ModelsFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut key = |env: Option<String>| -> Result<Option<Secret>, String> {
        let Some(var) = env else { return Ok(None) };
        core.declare_secret(&var)
            .map_err(|why| format!("{}: api_key_env: {why}", path.display()))?;
        if get(&var).is_none() {
            return Err(format!(
                "{}: environment variable {var} is not set",
                path.display()
            ));
        }
        Ok(Some(format!("env:{var}").into()))
    };
    let mut specs = vec![];
    for m in file.models {
        let mut deployments = vec![];
        for d in m.deployments {
            deployments.push(Deployment {
                api_key: key(d.api_key_env)?,
                name: d.name,
                backend: d.backend,
                base_url: d.base_url,
                upstream_model: d.upstream_model,
                weight: d.weight.unwrap_or(1),
                priority: d.priority,
                health_check: d.health_check,
                prices: d.prices,
                first_byte_timeout_secs: d.first_byte_timeout_secs,
            });
        }
        specs.push(ModelSpec {
            deployments,
            api_key: key(m.api_key_env)?,
            name: m.name,
            backend: m.backend,
            base_url: m.base_url,
            upstream_model: m.upstream_model,
            fallback_urls: m.fallback_urls,
            enabled: m.enabled,
            stream_usage: m.stream_usage,
            responses_api: m.responses_api,
            messages_api: m.messages_api,
            prices: m.prices,
        });
    }
    let mut backends = vec![];
    for b in file.sync_backends {
        backends.push(SyncBackend {
            api_key: key(b.api_key_env)?,
            backend: b.backend,
            base_url: b.base_url,
        });
    }
    core.sync_backends.extend(backends);
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(s.listen, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(s.db_path, PathBuf::from("./data/modelgate.db"));
        assert_eq!(s.core.trusted_proxy_hops, 0);
        assert!(s.database_url.is_none() && s.redis_url.is_none());
        assert!(
            s.mcp_commands.is_empty(),
            "no local MCP server unless allowed"
        );
    }

    #[test]
    fn local_mcp_programs_are_a_list() {
        let s = Settings::from_lookup(|k| {
            (k == "MG_MCP_COMMANDS").then(|| " node, /usr/bin/python3 ,,npx".to_owned())
        })
        .unwrap();
        let programs: Vec<&str> = s.mcp_commands.iter().map(String::as_str).collect();
        assert_eq!(programs, ["/usr/bin/python3", "node", "npx"]);
    }

    #[test]
    fn shared_services_are_urls_kept_secret() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let s = Settings::from_lookup(env(&[
            ("MG_DATABASE_URL", "postgres://gw:pw@db/modelgate"),
            ("MG_REDIS_URL", "redis://cache:6379"),
            ("MG_DATABASE_POOL", "4"),
        ]))
        .unwrap();
        assert_eq!(s.database_pool, 4);
        assert!(!format!("{s:?}").contains("pw@db"));
        let s = Settings::from_lookup(env(&[
            ("MG_DYNAMODB_TABLE", "modelgate"),
            ("MG_REDIS_URL", "redis://cache:6379"),
        ]))
        .unwrap();
        assert_eq!(s.dynamodb_table.as_deref(), Some("modelgate"));
        for pairs in [
            &[("MG_DYNAMODB_TABLE", "modelgate")][..],
            &[
                ("MG_DYNAMODB_TABLE", "modelgate"),
                ("MG_REDIS_URL", "redis://cache:6379"),
                ("MG_DATABASE_URL", "postgres://db/modelgate"),
            ],
        ] {
            let e = Settings::from_lookup(env(pairs)).unwrap_err();
            assert_eq!(e.var, "MG_DYNAMODB_TABLE");
        }
        for bad in [
            ("MG_DATABASE_URL", "mysql://db"),
            ("MG_REDIS_URL", "cache:6379"),
            ("MG_DATABASE_POOL", "0"),
            ("MG_DYNAMODB_TIMEOUT_MS", "50"),
        ] {
            let e = Settings::from_lookup(|k| (k == bad.0).then(|| bad.1.to_owned())).unwrap_err();
            assert_eq!(e.var, bad.0);
        }
    }

    #[test]
    fn models_file_resolves_keys_from_env() {
        let dir = std::env::temp_dir().join(format!("mg-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("models.toml");
        std::fs::write(
            &path,
            r#"
[[models]]
name = "gpt"
backend = "openai"
base_url = "https://api.openai.com/v1"
upstream_model = "gpt-4o-mini"
api_key_env = "TEST_UPSTREAM_KEY"
prices = { input = 0.15, cached_input = 0.075, output = 0.6 }

[[models]]
name = "llama"
[[models.deployments]]
name = "gpu-a"
backend = "vllm"
base_url = "http://10.0.0.11:8000"
weight = 2
health_check = true
[[models.deployments]]
backend = "openai"
base_url = "https://api.openai.com/v1"
upstream_model = "gpt-4o-mini"
api_key_env = "TEST_UPSTREAM_KEY"
priority = 1
prices = { input = 0.4, output = 1.6 }

[[sync_backends]]
backend = "ollama"
base_url = "http://127.0.0.1:11434"
"#,
        )
        .unwrap();
        let env = |k: &str| (k == "TEST_UPSTREAM_KEY").then(|| "sk-x".to_owned());
        let mut core = Config::default();
        let specs = load_models_file(&path, env, &mut core).unwrap();
        // The reference is stored, never the plaintext, and it is declared.
        assert_eq!(specs[0].api_key, Some("env:TEST_UPSTREAM_KEY".into()));
        assert!(core.secret_declared("TEST_UPSTREAM_KEY"));
        assert_eq!(specs[0].upstream_model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(core.sync_backends[0].backend, BackendKind::Ollama);
        let d = &specs[1].deployments;
        assert_eq!((specs[1].backend, d.len()), (None, 2));
        assert_eq!(
            (d[0].name.as_str(), d[0].weight, d[0].health_check),
            ("gpu-a", 2, true)
        );
        assert_eq!((d[1].priority, d[1].weight), (1, 1));
        assert_eq!(d[1].api_key, Some("env:TEST_UPSTREAM_KEY".into()));
        let price = |p: Option<modelgate_core::cost::Prices>| p.map(|p| (p.input, p.output));
        assert_eq!(price(specs[0].prices), Some((150_000, 600_000)));
        assert_eq!(price(d[1].prices), Some((400_000, 1_600_000)));
        let err = load_models_file(&path, |_| None, &mut Config::default()).unwrap_err();
        assert!(err.contains("TEST_UPSTREAM_KEY"));
        // The gateway's own settings are never an upstream key.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("TEST_UPSTREAM_KEY", "MG_ADMIN_API_KEY")).unwrap();
        let any = |_: &str| Some("x".to_owned());
        let err = load_models_file(&path, any, &mut Config::default()).unwrap_err();
        assert!(err.contains("reserved"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
