//! The admin CLI. Each command is sent through the core's admin API
//! in-process (no server needed, same validation as over HTTP), against the
//! store the settings name (the SQLite file, or PostgreSQL), authenticated
//! with a one-off random admin token.

use bytes::Bytes;
use clap::{Parser, Subcommand};
use modelgate_core::ports::{Accounting, Ports, RateLimiter, Store};
use modelgate_core::{Gateway, Peer};
use modelgate_native::ports::NativePorts;
use serde_json::{Map, Value, json};

use crate::settings::Settings;

mod mcp;

pub use mcp::McpServersCmd;

/// ModelGate: an OpenAI-compatible LLM gateway.
#[derive(Debug, Parser)]
#[command(name = "modelgate", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Manage models.
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Manage upstream MCP servers.
    #[command(subcommand)]
    McpServers(McpServersCmd),
    /// Apply the database migrations not applied yet (the server also
    /// does at start), and print their names.
    Migrate,
    /// Exit 0 if the server at MG_HOST:MG_PORT answers `GET /health` with
    /// 200 within 3 s, else 1 (a container's `HEALTHCHECK`).
    Health,
    /// Usage per day, key and model.
    Usage {
        /// Start (YYYY-MM-DD or epoch ms).
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive (YYYY-MM-DD or epoch ms).
        #[arg(long)]
        to: Option<String>,
        /// Only this key id.
        #[arg(long)]
        key_id: Option<String>,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
    },
}

/// `modelgate keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key; prints it once.
    Create {
        /// Label.
        #[arg(long)]
        name: String,
        /// Requests per minute (default: MG_DEFAULT_RPM).
        #[arg(long)]
        rpm: Option<u32>,
        /// Tokens per minute (default: unlimited).
        #[arg(long)]
        tpm: Option<u32>,
        /// Token quota, or "unlimited" (default: MG_DEFAULT_QUOTA).
        #[arg(long)]
        quota: Option<String>,
        /// When the quota starts again: none, daily, weekly, monthly (UTC).
        #[arg(long)]
        quota_period: Option<String>,
        /// Money budget, USD (default: unlimited).
        #[arg(long)]
        budget_usd: Option<f64>,
        /// When the budget starts again: none, daily, weekly, monthly (UTC).
        #[arg(long)]
        budget_period: Option<String>,
        /// Allowed models, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Allowed IPs/CIDRs, comma-separated (default: anywhere).
        #[arg(long, value_delimiter = ',')]
        ips: Vec<String>,
        /// MCP servers and tools allowed through /mcp, comma-separated:
        /// `server` or `server_tool` (default: all).
        #[arg(long, value_delimiter = ',')]
        tools: Vec<String>,
        /// Expiry, epoch ms.
        #[arg(long)]
        expires_at: Option<i64>,
        /// May use the admin API.
        #[arg(long)]
        admin: bool,
    },
    /// List keys (never the key or its hash).
    List,
    /// Show one key.
    Get {
        /// Key id.
        id: String,
    },
    /// Change a key with a JSON patch, e.g. '{"rpm":120,"status":"disabled"}'.
    Update {
        /// Key id.
        id: String,
        /// JSON object of fields to change.
        json: String,
    },
    /// Revoke a key for good.
    Revoke {
        /// Key id.
        id: String,
    },
}

/// `modelgate models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// Add a model.
    Add {
        /// Public name.
        #[arg(long)]
        name: String,
        /// openai | api3 | vllm | llamacpp | ollama
        #[arg(long, required_unless_present = "deployments")]
        backend: Option<String>,
        /// Upstream base URL.
        #[arg(long, required_unless_present = "deployments")]
        base_url: Option<String>,
        /// Deployments instead of one backend: a JSON array of
        /// `{"name", "backend", "base_url", "upstream_model", "api_key",
        /// "weight", "priority", "health_check"}`.
        #[arg(long, conflicts_with_all = ["backend", "base_url", "api_key_env"])]
        deployments: Option<String>,
        /// Upstream model name (default: the public name).
        #[arg(long)]
        upstream_model: Option<String>,
        /// Environment variable holding the upstream key.
        #[arg(long)]
        api_key_env: Option<String>,
        /// Prices, USD per million tokens: a JSON object
        /// `{"input", "cached_input", "output"}` (`cached_input` optional).
        #[arg(long)]
        prices: Option<String>,
    },
    /// List models (never their upstream keys).
    List,
    /// Change a model with a JSON patch.
    Update {
        /// Model id.
        id: String,
        /// JSON object of fields to change.
        json: String,
    },
    /// Delete a model.
    Delete {
        /// Model id.
        id: String,
    },
    /// Import the models the configured backends list.
    Sync,
}

/// One admin API call, as the CLI's own admin key.
struct Admin {
    token: String,
    method: http::Method,
    path: String,
    body: Value,
}

impl modelgate_compose::Job for Admin {
    type Output = (http::StatusCode, Value);

    async fn run<S: Store, A: Accounting, L: RateLimiter>(
        self,
        gateway: Gateway<NativePorts<S, A, L>>,
    ) -> Result<Self::Output, String> {
        Ok(call(&gateway, &self.token, self.method, &self.path, self.body).await)
    }
}

/// Run one admin command and print its JSON answer.
pub async fn run(cmd: Command, mut settings: Settings) -> Result<(), String> {
    let mut token = [0u8; 24];
    getrandom::fill(&mut token).map_err(|e| e.to_string())?;
    let token = format!(
        "cli-{}",
        token.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    settings.core.admin_key_hash = Some(modelgate_core::auth::hash_key(&token).into());
    if let Command::Health = cmd {
        return crate::health(settings.listen);
    }
    if let Command::Migrate = cmd {
        let applied = crate::compose::migrate(&settings).await?;
        println!("{}", json!({"applied": applied}));
        return Ok(());
    }
    let (method, path, body) = request_for(cmd)?;
    let admin = Admin {
        token,
        method,
        path,
        body,
    };
    let (status, answer) = crate::compose::with_gateway(&settings, admin).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_default()
    );
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the admin API answered {status}"))
    }
}

fn patch_body(json: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(json) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err("the patch must be a JSON object".into()),
    }
}

fn request_for(cmd: Command) -> Result<(http::Method, String, Value), String> {
    use http::Method;
    Ok(match cmd {
        Command::Serve | Command::Migrate | Command::Health => {
            return Err("serve, migrate and health are not admin commands".into());
        }
        Command::Keys(k) => match k {
            KeysCmd::Create {
                name,
                rpm,
                tpm,
                quota,
                quota_period,
                budget_usd,
                budget_period,
                models,
                ips,
                tools,
                expires_at,
                admin,
            } => {
                let mut b = Map::new();
                b.insert("name".into(), name.into());
                b.insert("allowed_models".into(), json!(models));
                b.insert("allowed_ips".into(), json!(ips));
                b.insert("allowed_tools".into(), json!(tools));
                b.insert("admin".into(), admin.into());
                if let Some(r) = rpm {
                    b.insert("rpm".into(), r.into());
                }
                if let Some(t) = tpm {
                    b.insert("tpm".into(), t.into());
                }
                if let Some(q) = quota {
                    let v = if q == "unlimited" {
                        Value::Null
                    } else {
                        Value::from(
                            q.parse::<i64>()
                                .map_err(|_| "--quota takes a number or 'unlimited'")?,
                        )
                    };
                    b.insert("quota".into(), v);
                }
                if let Some(e) = expires_at {
                    b.insert("expires_at".into(), e.into());
                }
                if let Some(p) = quota_period {
                    b.insert("quota_period".into(), p.into());
                }
                if let Some(usd) = budget_usd {
                    b.insert("budget_usd".into(), usd.into());
                }
                if let Some(p) = budget_period {
                    b.insert("budget_period".into(), p.into());
                }
                (Method::POST, "/admin/api/keys".into(), Value::Object(b))
            }
            KeysCmd::List => (Method::GET, "/admin/api/keys".into(), Value::Null),
            KeysCmd::Get { id } => (Method::GET, format!("/admin/api/keys/{id}"), Value::Null),
            KeysCmd::Update { id, json } => (
                Method::PATCH,
                format!("/admin/api/keys/{id}"),
                patch_body(&json)?,
            ),
            KeysCmd::Revoke { id } => {
                (Method::DELETE, format!("/admin/api/keys/{id}"), Value::Null)
            }
        },
        Command::Models(m) => match m {
            ModelsCmd::Add {
                name,
                backend,
                base_url,
                upstream_model,
                api_key_env,
                deployments,
                prices,
            } => {
                // The reference, never the plaintext: the server reads the
                // variable (declared in MG_UPSTREAM_SECRETS) when it calls.
                let api_key = api_key_env.map(|var| format!("env:{var}"));
                let mut b = json!({"name": name, "upstream_model": upstream_model});
                if let Some(prices) = prices {
                    b["prices"] =
                        serde_json::from_str(&prices).map_err(|e| format!("--prices: {e}"))?;
                }
                match deployments {
                    Some(list) => {
                        let list: Value = serde_json::from_str(&list)
                            .map_err(|e| format!("--deployments: {e}"))?;
                        b["deployments"] = list;
                    }
                    None => {
                        b["backend"] = json!(backend);
                        b["base_url"] = json!(base_url);
                        b["api_key"] = json!(api_key);
                    }
                }
                (Method::POST, "/admin/api/models".into(), b)
            }
            ModelsCmd::List => (Method::GET, "/admin/api/models".into(), Value::Null),
            ModelsCmd::Update { id, json } => (
                Method::PATCH,
                format!("/admin/api/models/{id}"),
                patch_body(&json)?,
            ),
            ModelsCmd::Delete { id } => (
                Method::DELETE,
                format!("/admin/api/models/{id}"),
                Value::Null,
            ),
            ModelsCmd::Sync => (Method::POST, "/admin/api/models/sync".into(), Value::Null),
        },
        Command::McpServers(m) => return mcp::request(m),
        Command::Usage {
            from,
            to,
            key_id,
            model,
        } => {
            let q: Vec<String> = [
                ("from", from),
                ("to", to),
                ("key_id", key_id),
                ("model", model),
            ]
            .into_iter()
            .filter_map(|(k, v)| {
                v.map(|v| format!("{k}={}", v.replace('&', "%26").replace(' ', "%20")))
            })
            .collect();
            (
                Method::GET,
                format!("/admin/api/usage?{}", q.join("&")),
                Value::Null,
            )
        }
    })
}

async fn call<P: Ports>(
    gateway: &Gateway<P>,
    token: &str,
    method: http::Method,
    path: &str,
    body: Value,
) -> (http::StatusCode, Value) {
    let bytes = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(bytes);
    let Ok(req) = req else {
        return (http::StatusCode::BAD_REQUEST, json!({"error": "bad id"}));
    };
    let resp = gateway.handle(req, Peer::default()).await;
    let status = resp.status();
    let answer = resp
        .body()
        .as_full()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    (status, answer)
}
