//! Native settings from `MG_*` variables, on top of the core's [`Config`],
//! and the declarative models file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use modelgate_core::config::{ConfigError, ModelSpec, SyncBackend};
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
    /// `MG_MODELS_FILE`: a TOML file of models applied at start.
    pub models_file: Option<PathBuf>,
    /// `MG_TRUST_FORWARDED_FOR`: take the client IP from X-Forwarded-For.
    pub trust_forwarded_for: bool,
    /// `MG_ADMIN_DIR`: the admin panel's folder (default ./admin).
    pub admin_dir: PathBuf,
    /// `MG_LOG_FORMAT`: `text` (default) or `json`.
    pub log_json: bool,
    /// The core's settings.
    pub core: Config,
}

impl Settings {
    /// Read from `get` (the process environment in `main`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let core = Config::from_lookup(&get)?;
        let val = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let bad = |var: &str, why: &str| ConfigError {
            var: var.into(),
            why: why.into(),
        };
        let host = val("MG_HOST").unwrap_or_else(|| "127.0.0.1".into());
        let port = val("MG_PORT").unwrap_or_else(|| "18080".into());
        let listen = format!("{host}:{port}")
            .parse::<SocketAddr>()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .map_err(|_| bad("MG_HOST/MG_PORT", "not an IP address and port"))?;
        let journal = match val("MG_SQLITE_JOURNAL").as_deref() {
            None | Some("wal") => modelgate_sqlite::Journal::Wal,
            Some("delete") => modelgate_sqlite::Journal::Delete,
            Some(_) => return Err(bad("MG_SQLITE_JOURNAL", "must be 'wal' or 'delete'")),
        };
        let wal_max_mb = match val("MG_SQLITE_WAL_MAX_MB") {
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
        let flag = |k: &str| -> Result<bool, ConfigError> {
            match val(k).as_deref() {
                None | Some("0" | "false" | "no") => Ok(false),
                Some("1" | "true" | "yes") => Ok(true),
                Some(_) => Err(bad(k, "must be true or false")),
            }
        };
        Ok(Self {
            listen,
            db_path: val("MG_DB_PATH")
                .unwrap_or_else(|| "./data/modelgate.db".into())
                .into(),
            journal,
            wal_max_bytes: wal_max_mb << 20,
            models_file: val("MG_MODELS_FILE").map(PathBuf::from),
            trust_forwarded_for: flag("MG_TRUST_FORWARDED_FOR")?,
            admin_dir: val("MG_ADMIN_DIR")
                .unwrap_or_else(|| "./admin".into())
                .into(),
            log_json: val("MG_LOG_FORMAT").as_deref() == Some("json"),
            core,
        })
    }
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
    backend: BackendKind,
    base_url: String,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackend {
    backend: BackendKind,
    base_url: String,
    #[serde(default)]
    api_key_env: Option<String>,
}

/// Read a models file, resolving `api_key_env` through `get`.
pub fn load_models_file(
    path: &Path,
    get: impl Fn(&str) -> Option<String>,
) -> Result<(Vec<ModelSpec>, Vec<SyncBackend>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: ModelsFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = |env: Option<String>| -> Result<Option<String>, String> {
        env.map(|var| {
            get(&var)
                .ok_or_else(|| format!("{}: environment variable {var} is not set", path.display()))
        })
        .transpose()
    };
    let mut specs = vec![];
    for m in file.models {
        specs.push(ModelSpec {
            api_key: key(m.api_key_env)?,
            name: m.name,
            backend: m.backend,
            base_url: m.base_url,
            upstream_model: m.upstream_model,
            fallback_urls: m.fallback_urls,
            enabled: m.enabled,
            stream_usage: m.stream_usage,
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
    Ok((specs, backends))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(s.listen, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(s.db_path, PathBuf::from("./data/modelgate.db"));
        assert!(!s.trust_forwarded_for);
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

[[sync_backends]]
backend = "ollama"
base_url = "http://127.0.0.1:11434"
"#,
        )
        .unwrap();
        let env = |k: &str| (k == "TEST_UPSTREAM_KEY").then(|| "sk-x".to_owned());
        let (specs, backends) = load_models_file(&path, env).unwrap();
        assert_eq!(specs[0].api_key.as_deref(), Some("sk-x"));
        assert_eq!(specs[0].upstream_model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(backends[0].backend, BackendKind::Ollama);
        let err = load_models_file(&path, |_| None).unwrap_err();
        assert!(err.contains("TEST_UPSTREAM_KEY"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
