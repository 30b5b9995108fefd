//! Settings: [`Config`], read from `MG_*` variables through a lookup
//! function (process environment natively, `[vars]` on Workers), and the
//! declarative model list ([`ModelSpec`]) a deployment can start from.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::auth;
use crate::backend::BackendKind;
use crate::patch::set;
use crate::resilience::Resilience;
use crate::routing::Strategy;
use crate::secret::Secret;

/// First-byte deadlines, ms (see [`Config::first_byte_ms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstByte {
    /// For a buffered request.
    pub buffered: u64,
    /// For a streamed request.
    pub stream: u64,
}

/// Gateway settings that every runtime shares.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Largest body of an Anthropic Messages request (and its token
    /// count), bytes: coding agents send whole repositories' worth of
    /// context and images (Anthropic's own limit is 32 MB).
    pub max_messages_body_bytes: usize,
    /// How long a Messages stream may be silent before the client gets a
    /// `ping`, ms (`MG_MESSAGES_PING_SECS`): a local model's prefill of a
    /// coding agent's prompt can take minutes, and clients' stream
    /// watchdogs end silent streams.
    pub messages_ping_ms: u64,
    /// How long a request body may take to arrive once its head has, ms
    /// (`MG_BODY_TIMEOUT_SECS`).
    pub body_timeout_ms: u64,
    /// Overall upstream timeout, ms (headers and the whole body).
    pub timeout_ms: u64,
    /// How long a new upstream connection may take to be ready, ms (name
    /// lookup, TCP and TLS; `MG_CONNECT_TIMEOUT_MS`): past it the attempt
    /// fails and the next deployment is tried. Native and Lambda; a
    /// Worker's `fetch` has the platform's own.
    pub connect_timeout_ms: u64,
    /// How long a deployment may take to send a response head, ms, before
    /// the request fails over to another one (which must remain): buffered
    /// (`MG_FIRST_BYTE_TIMEOUT_SECS`) and streamed requests
    /// (`MG_FIRST_BYTE_TIMEOUT_STREAM_SECS`). A buffered answer's head comes
    /// after the whole generation, a stream's at its start.
    pub first_byte_ms: FirstByte,
    /// How long past `timeout_ms` a reservation's lease lasts, ms
    /// (`MG_LEASE_GRACE_SECS`): then a request whose process died is
    /// settled as abandoned.
    pub lease_grace_ms: u64,
    /// How long this instance may use a key or model record it has read,
    /// ms (`MG_RECORD_CACHE_MS`; 0: read the store every time). Admin
    /// changes made through this instance apply at once; those made through
    /// another (a replica, the CLI) within this. Counters are never cached.
    pub record_cache_ms: u64,
    /// RPM for keys without their own.
    pub default_rpm: u32,
    /// Quota given to new keys unless the admin says otherwise (`None`:
    /// unlimited).
    pub default_quota: Option<i64>,
    /// Completion tokens reserved (and set upstream as the cap) when a
    /// request on a key with a quota sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// Retries, backoff, circuit breaker.
    pub resilience: Resilience,
    /// SHA-256 (hex) of the bootstrap admin key (`MG_ADMIN_API_KEY`).
    pub admin_key_hash: Option<Secret>,
    /// Backends `POST /admin/api/models/sync` lists besides those of the
    /// existing models.
    pub sync_backends: Vec<SyncBackend>,
    /// The deployment secrets a model's `api_key` may name as `env:NAME`
    /// (`MG_UPSTREAM_SECRETS`, plus the names a runtime declares itself):
    /// nothing else of the deployment is readable through the admin API.
    pub upstream_secrets: BTreeSet<String>,
    /// Proxies of the operator's own in front of the gateway, each
    /// appending to `X-Forwarded-For` (`MG_TRUSTED_PROXY_HOPS`; see
    /// [`crate::edge`]). 0: the platform's peer address is the client's.
    pub trusted_proxy_hops: u8,
    /// Let upstreams be link-local or cloud metadata addresses
    /// (`MG_ALLOW_LINK_LOCAL_UPSTREAMS`; see [`crate::edge`]).
    pub allow_link_local_upstreams: bool,
    /// Stored responses (`/v1/responses` with `store`).
    pub responses: ResponsesSettings,
    /// The secret MCP session ids are sealed with (`MG_MCP_SESSION_SECRET`):
    /// the same on every replica and runtime that serves the same clients.
    /// Unset: derived from the bootstrap admin key, else random per process.
    pub mcp_session_secret: Option<Secret>,
}

/// How responses are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsesSettings {
    /// Keep responses asked to be stored (`MG_RESPONSES_STORE`; off: none
    /// is, and chains are refused).
    pub store: bool,
    /// How long a stored response lives, ms (`MG_RESPONSES_RETENTION_DAYS`).
    pub retention_ms: u64,
    /// The largest response kept (its input and answer as JSON), bytes
    /// (`MG_RESPONSES_MAX_BYTES`); a larger one is answered but not kept.
    pub max_bytes: usize,
}

impl Default for ResponsesSettings {
    fn default() -> Self {
        Self {
            store: true,
            retention_ms: 30 * 86_400_000,
            // DynamoDB's items end at 400 KB.
            max_bytes: 350_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body_bytes: 5 * 1024 * 1024,
            max_messages_body_bytes: 32 * 1024 * 1024,
            messages_ping_ms: 10_000,
            body_timeout_ms: 30_000,
            timeout_ms: 300_000,
            connect_timeout_ms: 10_000,
            first_byte_ms: FirstByte {
                buffered: 120_000,
                stream: 30_000,
            },
            lease_grace_ms: 60_000,
            record_cache_ms: 1_000,
            default_rpm: 60,
            default_quota: Some(1_000_000),
            default_max_tokens: 4096,
            resilience: Resilience::default(),
            admin_key_hash: None,
            sync_backends: Vec::new(),
            upstream_secrets: BTreeSet::new(),
            trusted_proxy_hops: 0,
            allow_link_local_upstreams: false,
            responses: ResponsesSettings::default(),
            mcp_session_secret: None,
        }
    }
}

/// A backend to import models from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBackend {
    /// Protocol.
    pub backend: BackendKind,
    /// Base URL.
    pub base_url: String,
    /// Upstream key.
    #[serde(default)]
    pub api_key: Option<Secret>,
}

/// A bad setting: names the variable, never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {why}")]
pub struct ConfigError {
    /// The variable.
    pub var: String,
    /// What is wrong.
    pub why: String,
}

/// The settings as `from_lookup` reads them: trimmed, empty is unset.
struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, k: &str) -> Option<String> {
        (self.0)(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn num<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, ConfigError> {
        parse_num(k, self.get(k))
    }

    /// A duration set in seconds (`at_least` of them), in ms.
    fn secs(&self, k: &str, at_least: u64) -> Result<Option<u64>, ConfigError> {
        Ok(self
            .num::<u64>(k)?
            .map(|v| v.max(at_least).saturating_mul(1000)))
    }

    fn flag(&self, k: &str) -> Result<bool, ConfigError> {
        match self.get(k).as_deref() {
            None | Some("0" | "false" | "no") => Ok(false),
            Some("1" | "true" | "yes") => Ok(true),
            Some(_) => Err(invalid(k, "must be true or false")),
        }
    }
}

fn parse_num<T: std::str::FromStr>(k: &str, v: Option<String>) -> Result<Option<T>, ConfigError> {
    v.map(|v| {
        v.parse::<T>().map_err(|_| ConfigError {
            var: k.into(),
            why: format!("'{v}' is not a valid number"),
        })
    })
    .transpose()
}

fn invalid(var: &str, why: &str) -> ConfigError {
    ConfigError {
        var: var.into(),
        why: why.into(),
    }
}

impl Config {
    /// Read `MG_*` settings through `get`; unset variables keep defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(get);
        let mut c = Self::default();
        c.read_limits(&env)?;
        c.read_resilience(&env)?;
        c.read_access(&env)?;
        c.read_responses(&env)?;
        if c.default_rpm == 0 {
            return Err(invalid("MG_DEFAULT_RPM", "must be at least 1"));
        }
        Ok(c)
    }

    /// Bodies, deadlines and the defaults of keys.
    fn read_limits(
        &mut self,
        env: &Env<impl Fn(&str) -> Option<String>>,
    ) -> Result<(), ConfigError> {
        set(&mut self.max_body_bytes, env.num("MG_MAX_BODY_BYTES")?);
        set(
            &mut self.max_messages_body_bytes,
            env.num("MG_MAX_MESSAGES_BODY_BYTES")?,
        );
        set(
            &mut self.messages_ping_ms,
            env.secs("MG_MESSAGES_PING_SECS", 1)?,
        );
        set(
            &mut self.body_timeout_ms,
            env.secs("MG_BODY_TIMEOUT_SECS", 1)?,
        );
        set(
            &mut self.lease_grace_ms,
            env.secs("MG_LEASE_GRACE_SECS", 0)?,
        );
        set(&mut self.record_cache_ms, env.num("MG_RECORD_CACHE_MS")?);
        set(&mut self.timeout_ms, env.secs("MG_TIMEOUT_SECS", 0)?);
        let connect = env.num::<u64>("MG_CONNECT_TIMEOUT_MS")?;
        set(&mut self.connect_timeout_ms, connect.map(|v| v.max(1)));
        let first = &mut self.first_byte_ms;
        set(
            &mut first.buffered,
            env.secs("MG_FIRST_BYTE_TIMEOUT_SECS", 1)?,
        );
        set(
            &mut first.stream,
            env.secs("MG_FIRST_BYTE_TIMEOUT_STREAM_SECS", 1)?,
        );
        set(&mut self.default_rpm, env.num("MG_DEFAULT_RPM")?);
        match env.get("MG_DEFAULT_QUOTA").as_deref() {
            Some("unlimited") => self.default_quota = None,
            other => {
                let quota = parse_num("MG_DEFAULT_QUOTA", other.map(str::to_owned))?;
                set(&mut self.default_quota, quota.map(Some));
            }
        }
        set(
            &mut self.default_max_tokens,
            env.num("MG_DEFAULT_MAX_TOKENS")?,
        );
        Ok(())
    }

    /// Retries, breakers, ejection and routing.
    fn read_resilience(
        &mut self,
        env: &Env<impl Fn(&str) -> Option<String>>,
    ) -> Result<(), ConfigError> {
        let r = &mut self.resilience;
        set(&mut r.retries, env.num("MG_RETRIES")?);
        set(&mut r.backoff_ms, env.num("MG_RETRY_BACKOFF_MS")?);
        set(&mut r.breaker_threshold, env.num("MG_BREAKER_THRESHOLD")?);
        for (var, ms) in [
            ("MG_BREAKER_COOLDOWN_SECS", &mut r.breaker_cooldown_ms),
            ("MG_EJECT_WINDOW_SECS", &mut r.eject_window_ms),
            ("MG_RATE_LIMIT_COOLDOWN_SECS", &mut r.rate_limit_cooldown_ms),
            ("MG_LATENCY_DECAY_SECS", &mut r.latency_decay_ms),
            (
                "MG_HEALTH_CHECK_INTERVAL_SECS",
                &mut r.health_check_interval_ms,
            ),
        ] {
            set(
                ms,
                env.num::<u64>(var)?.map(|v| v.saturating_mul(1000).max(1)),
            );
        }
        if let Some(v) = env.num::<f64>("MG_EJECT_FAILURE_RATIO")? {
            if !(v > 0.0 && v <= 1.0) {
                return Err(invalid(
                    "MG_EJECT_FAILURE_RATIO",
                    "must be above 0 and at most 1",
                ));
            }
            r.eject_ratio = v;
        }
        r.strategy = match env.get("MG_ROUTING").as_deref() {
            None | Some("latency") => Strategy::Latency,
            Some("weighted") => Strategy::Weighted,
            Some(_) => return Err(invalid("MG_ROUTING", "must be latency or weighted")),
        };
        Ok(())
    }

    /// The admin key, proxies trusted, upstream addresses and secrets.
    fn read_access(
        &mut self,
        env: &Env<impl Fn(&str) -> Option<String>>,
    ) -> Result<(), ConfigError> {
        if let Some(key) = env.get("MG_ADMIN_API_KEY") {
            if key.len() < 16 {
                return Err(invalid(
                    "MG_ADMIN_API_KEY",
                    "must be at least 16 characters",
                ));
            }
            self.admin_key_hash = Some(auth::hash_key(&key).into());
        }
        if let Some(secret) = env.get("MG_MCP_SESSION_SECRET") {
            if secret.len() < 32 {
                return Err(invalid(
                    "MG_MCP_SESSION_SECRET",
                    "must be at least 32 characters",
                ));
            }
            self.mcp_session_secret = Some(secret.into());
        }
        // The older switch, MG_TRUST_FORWARDED_FOR, means one proxy in front.
        self.trusted_proxy_hops = u8::from(env.flag("MG_TRUST_FORWARDED_FOR")?);
        self.allow_link_local_upstreams = env.flag("MG_ALLOW_LINK_LOCAL_UPSTREAMS")?;
        set(
            &mut self.trusted_proxy_hops,
            env.num("MG_TRUSTED_PROXY_HOPS")?,
        );
        for name in env
            .get("MG_UPSTREAM_SECRETS")
            .unwrap_or_default()
            .split(|ch: char| ch == ',' || ch.is_whitespace())
            .filter(|n| !n.is_empty())
        {
            self.declare_secret(name)
                .map_err(|why| invalid("MG_UPSTREAM_SECRETS", &why))?;
        }
        Ok(())
    }

    /// Stored Responses.
    fn read_responses(
        &mut self,
        env: &Env<impl Fn(&str) -> Option<String>>,
    ) -> Result<(), ConfigError> {
        let r = &mut self.responses;
        r.store = env.get("MG_RESPONSES_STORE").is_none() || env.flag("MG_RESPONSES_STORE")?;
        let days = env.num::<u64>("MG_RESPONSES_RETENTION_DAYS")?;
        set(
            &mut r.retention_ms,
            days.map(|v| v.max(1).saturating_mul(86_400_000)),
        );
        set(&mut r.max_bytes, env.num("MG_RESPONSES_MAX_BYTES")?);
        Ok(())
    }
}

/// Prefixes of the gateway's own settings and the platform's credentials:
/// never an upstream secret, whoever declares them.
const RESERVED_SECRET_PREFIXES: [&str; 2] = ["MG_", "AWS_"];

impl Config {
    /// Let models name the deployment secret `name` as `env:NAME`. Refuses
    /// names that are not `[A-Za-z0-9_]+` and the reserved prefixes
    /// (`MG_*`: the bootstrap admin key among them; `AWS_*`).
    pub fn declare_secret(&mut self, name: &str) -> Result<(), String> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("'{name}' is not a variable name"));
        }
        let upper = name.to_ascii_uppercase();
        if RESERVED_SECRET_PREFIXES
            .iter()
            .any(|p| upper.starts_with(p))
        {
            return Err(format!(
                "'{name}' is reserved: MG_* and AWS_* are never upstream secrets"
            ));
        }
        self.upstream_secrets.insert(name.to_owned());
        Ok(())
    }

    /// Whether `name` is a declared upstream secret.
    pub fn secret_declared(&self, name: &str) -> bool {
        self.upstream_secrets.contains(name)
    }
}

/// One model in a declarative models file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Public name.
    pub name: String,
    /// Protocol (or `deployments`).
    #[serde(default)]
    pub backend: Option<BackendKind>,
    /// Base URL (or `deployments`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Upstream model name (default: `name`).
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// Upstream key, or `env:NAME` (from `api_key_env` natively).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Fallback base URLs.
    #[serde(default)]
    pub fallback_urls: Vec<String>,
    /// Enabled (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Ask for stream usage (default true).
    #[serde(default)]
    pub stream_usage: Option<bool>,
    /// How `/v1/responses` is served (default: the backend's).
    #[serde(default)]
    pub responses_api: Option<crate::backend::ResponsesApi>,
    /// How `/v1/messages` is served (`None`: the backend's default).
    #[serde(default)]
    pub messages_api: Option<crate::backend::MessagesApi>,
    /// Deployments, instead of `backend` and `base_url`.
    #[serde(default)]
    pub deployments: Vec<crate::deployment::Deployment>,
    /// USD per million tokens: `input`, `cached_input`, `output`.
    #[serde(default)]
    pub prices: Option<crate::cost::Prices>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_match_the_original() {
        let c = Config::from_lookup(env(&[])).unwrap();
        assert_eq!(
            (c.max_body_bytes, c.timeout_ms, c.default_rpm),
            (5 << 20, 300_000, 60)
        );
        assert_eq!(c.default_quota, Some(1_000_000));
        assert_eq!(c.resilience, Resilience::default());
        assert!(c.admin_key_hash.is_none());
    }

    #[test]
    fn only_declared_non_reserved_names_are_upstream_secrets() {
        let c =
            Config::from_lookup(env(&[("MG_UPSTREAM_SECRETS", "OPENAI_KEY, groq_key")])).unwrap();
        assert!(c.secret_declared("OPENAI_KEY") && c.secret_declared("groq_key"));
        assert!(!c.secret_declared("HOME"));
        for bad in [
            "MG_ADMIN_API_KEY",
            "mg_admin_api_key",
            "AWS_SECRET_ACCESS_KEY",
            "A-B",
        ] {
            let e = Config::from_lookup(env(&[("MG_UPSTREAM_SECRETS", bad)])).unwrap_err();
            assert_eq!(e.var, "MG_UPSTREAM_SECRETS", "{bad}");
        }
    }

    #[test]
    fn variables_override() {
        let c = Config::from_lookup(env(&[
            ("MG_TIMEOUT_SECS", "5"),
            ("MG_CONNECT_TIMEOUT_MS", "250"),
            ("MG_FIRST_BYTE_TIMEOUT_SECS", "7"),
            ("MG_FIRST_BYTE_TIMEOUT_STREAM_SECS", "3"),
            ("MG_DEFAULT_QUOTA", "unlimited"),
            ("MG_ADMIN_API_KEY", "a-long-admin-key-123"),
            ("MG_RETRIES", "0"),
        ]))
        .unwrap();
        assert_eq!(c.timeout_ms, 5000);
        assert_eq!(c.connect_timeout_ms, 250);
        let first = FirstByte {
            buffered: 7000,
            stream: 3000,
        };
        assert_eq!(c.first_byte_ms, first);
        assert_eq!(c.default_quota, None);
        assert_eq!(c.resilience.retries, 0);
        assert_eq!(
            c.admin_key_hash,
            Some(auth::hash_key("a-long-admin-key-123").into())
        );
    }

    #[test]
    fn bad_values_name_the_variable_not_the_secret() {
        let e = Config::from_lookup(env(&[("MG_DEFAULT_RPM", "many")])).unwrap_err();
        assert_eq!(e.var, "MG_DEFAULT_RPM");
        let e = Config::from_lookup(env(&[("MG_ADMIN_API_KEY", "short-secret")])).unwrap_err();
        assert!(!e.to_string().contains("short-secret"));
        assert!(Config::from_lookup(env(&[("MG_DEFAULT_RPM", "0")])).is_err());
    }
}
