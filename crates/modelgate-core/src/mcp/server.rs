//! Upstream MCP servers as an operator declares them: a name (the prefix of
//! its tools' names), a Streamable HTTP URL and the headers that carry its
//! credentials, or (native server) a command run as a child over stdio and
//! its environment; a deadline per call. What a server may be is decided
//! here, once, for the admin API of every runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::double_option;
use crate::secret::Secret;

/// Longest server name: `{server}_{tool}` must stay within the 64
/// characters of an OpenAI function name with room for the tool's.
pub const MAX_NAME: usize = 32;
/// Most headers a server may carry.
pub const MAX_HEADERS: usize = 16;
/// Longest header value.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
/// Deadline of one call when the operator names none.
pub const DEFAULT_TIMEOUT_MS: u32 = 60_000;
/// Bounds of a call's deadline.
pub const TIMEOUT_MS: std::ops::RangeInclusive<u32> = 1_000..=600_000;
/// Most arguments of a command, the program included.
pub const MAX_ARGS: usize = 64;
/// Longest argument.
pub const MAX_ARG: usize = 4096;
/// Most variables of a command's environment.
pub const MAX_ENV: usize = 32;

/// Headers the gateway writes itself on an upstream MCP request: a server's
/// own headers may not replace them (the protocol's, the body's framing,
/// the connection's).
const RESERVED_HEADERS: [&str; 14] = [
    "host",
    "content-length",
    "content-type",
    "accept",
    "connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];

/// An upstream MCP server. Its `Serialize` is the stored form, header
/// values included: answers use [`McpServer::admin_view`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServer {
    /// Stable id (`mcp_` + hex).
    pub id: String,
    /// Unique name, the prefix of its tools' names.
    pub name: String,
    /// Streamable HTTP endpoint (empty for a command). Admin-only; never
    /// in client answers.
    #[serde(default)]
    pub url: String,
    /// Headers sent on every upstream request (credentials): a literal, or
    /// `env:NAME` (optionally after a scheme, `Bearer env:NAME`) naming a
    /// declared upstream secret. Never in an answer.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// A local server: the program and its arguments, run as a child that
    /// speaks MCP over stdio (native server only; empty for a URL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The command's whole environment (values as header values are:
    /// literal or `env:NAME`). Never in an answer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, Secret>,
    /// Whether clients reach it.
    pub enabled: bool,
    /// Deadline of one call, ms.
    pub timeout_ms: u32,
    /// Tool calls a minute each key may make to it (`None`: no limit of
    /// its own).
    #[serde(default)]
    pub rpm: Option<u32>,
    /// The accepted definition of each tool (its own name to the hash of
    /// [`crate::mcp::pins::definition_hash`]): pinned when the gateway
    /// first lists the server's tools, again when an admin accepts them.
    #[serde(default)]
    pub pins: BTreeMap<String, String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed, ms since the epoch (also the version a change checks).
    pub updated_at: i64,
}

/// A server as `POST /admin/api/mcp/servers` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    /// Unique name.
    pub name: String,
    /// Streamable HTTP endpoint (or a command).
    pub url: Option<String>,
    /// Headers with their values.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Program and arguments of a local server (or a URL).
    pub command: Option<Vec<String>>,
    /// The command's environment.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Enabled unless `false`.
    pub enabled: Option<bool>,
    /// Deadline of one call, ms.
    pub timeout_ms: Option<u32>,
    /// Tool calls a minute per key.
    pub rpm: Option<u32>,
}

/// Fields an admin may change on a server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerPatch {
    /// New name.
    pub name: Option<String>,
    /// New URL (`null`: none, for a command).
    #[serde(default, deserialize_with = "double_option")]
    pub url: Option<Option<String>>,
    /// Headers to set (a value) or remove (`null`); headers not named keep
    /// theirs, so a patch need not repeat a credential it does not change.
    pub headers: Option<BTreeMap<String, Option<Secret>>>,
    /// New command (`null`: none, for a URL).
    #[serde(default, deserialize_with = "double_option")]
    pub command: Option<Option<Vec<String>>>,
    /// Environment variables to set or remove, as `headers`.
    pub env: Option<BTreeMap<String, Option<Secret>>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New deadline (`null`: the default).
    #[serde(default, deserialize_with = "double_option")]
    pub timeout_ms: Option<Option<u32>>,
    /// New calls a minute per key (`null`: none).
    #[serde(default, deserialize_with = "double_option")]
    pub rpm: Option<Option<u32>>,
}

/// Why a server was refused: the message and the field it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// What is wrong, for the operator.
    pub message: String,
    /// The field.
    pub param: &'static str,
}

fn invalid(param: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        message: message.into(),
        param,
    }
}

impl McpServer {
    /// A new server from `spec` (not yet checked: see [`McpServer::check`]).
    pub fn from_spec(spec: McpServerSpec, id: String, now_ms: i64) -> Self {
        Self {
            id,
            name: spec.name,
            url: spec
                .url
                .map(|u| u.trim_end_matches('/').to_owned())
                .unwrap_or_default(),
            headers: spec.headers,
            command: spec.command.unwrap_or_default(),
            env: spec.env,
            enabled: spec.enabled.unwrap_or(true),
            timeout_ms: spec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            rpm: spec.rpm,
            pins: BTreeMap::new(),
            created_at: now_ms,
            updated_at: now_ms,
        }
    }

    /// The server as `patch` leaves it at `now_ms`.
    pub fn patched(&self, patch: McpServerPatch, now_ms: i64) -> Self {
        let mut s = self.clone();
        crate::patch::set(&mut s.name, patch.name);
        if let Some(url) = patch.url {
            s.url = url
                .map(|u| u.trim_end_matches('/').to_owned())
                .unwrap_or_default();
        }
        if let Some(command) = patch.command {
            s.command = command.unwrap_or_default();
        }
        merge(&mut s.headers, patch.headers);
        merge(&mut s.env, patch.env);
        crate::patch::set(&mut s.enabled, patch.enabled);
        if let Some(t) = patch.timeout_ms {
            s.timeout_ms = t.unwrap_or(DEFAULT_TIMEOUT_MS);
        }
        crate::patch::set(&mut s.rpm, patch.rpm);
        s.updated_at = now_ms.max(self.updated_at + 1);
        s
    }

    /// Whether it is a local server (a command) rather than a URL.
    pub fn is_local(&self) -> bool {
        !self.command.is_empty()
    }

    /// Check everything but the URL's address policy and the program (the
    /// gateway's settings and runtime decide those): `declared` tells
    /// whether an `env:NAME` names a declared upstream secret.
    pub fn check(&self, declared: impl Fn(&str) -> bool) -> Result<(), Invalid> {
        check_name(&self.name)?;
        self.check_transport(&declared)?;
        if !TIMEOUT_MS.contains(&self.timeout_ms) {
            return Err(invalid(
                "timeout_ms",
                format!(
                    "'timeout_ms' must be between {} and {}.",
                    TIMEOUT_MS.start(),
                    TIMEOUT_MS.end()
                ),
            ));
        }
        if self.rpm.is_some_and(|r| r == 0 || r > 1_000_000) {
            return Err(invalid(
                "rpm",
                "'rpm' must be from 1 to 1000000, or null for no limit.",
            ));
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(invalid(
                "headers",
                format!("At most {MAX_HEADERS} headers."),
            ));
        }
        for (name, value) in &self.headers {
            check_header(name, value.expose(), &declared)?;
        }
        Ok(())
    }

    /// A URL and headers, or a command and its environment: one of them.
    fn check_transport(&self, declared: &impl Fn(&str) -> bool) -> Result<(), Invalid> {
        if self.url.is_empty() == self.command.is_empty() {
            return Err(invalid(
                "url",
                "A server has either a 'url' (Streamable HTTP) or a 'command' (stdio), not both.",
            ));
        }
        if !self.is_local() {
            if !self.env.is_empty() {
                return Err(invalid(
                    "env",
                    "'env' is for a 'command'; a URL has 'headers'.",
                ));
            }
            return Ok(());
        }
        if !self.headers.is_empty() {
            return Err(invalid(
                "headers",
                "'headers' are for a 'url'; a command has 'env'.",
            ));
        }
        let bad_arg = |a: &String| a.is_empty() || a.len() > MAX_ARG || a.contains('\0');
        if self.command.len() > MAX_ARGS || self.command.iter().any(bad_arg) {
            return Err(invalid(
                "command",
                format!(
                    "'command' is the program and at most {} arguments, each 1 to {MAX_ARG} characters.",
                    MAX_ARGS - 1
                ),
            ));
        }
        if self.env.len() > MAX_ENV {
            return Err(invalid("env", format!("At most {MAX_ENV} variables.")));
        }
        for (name, value) in &self.env {
            check_variable(name, value.expose(), declared)?;
        }
        Ok(())
    }

    /// The server as the admin API shows it: header and variable names,
    /// never their values.
    pub fn admin_view(&self) -> Value {
        json!({
            "id": self.id,
            "object": "mcp_server",
            "name": self.name,
            "url": (!self.url.is_empty()).then_some(&self.url),
            "headers": self.headers.keys().collect::<Vec<_>>(),
            "command": (!self.command.is_empty()).then_some(&self.command),
            "env": self.env.keys().collect::<Vec<_>>(),
            "enabled": self.enabled,
            "timeout_ms": self.timeout_ms,
            "rpm": self.rpm,
            "pinned_tools": self.pins.keys().collect::<Vec<_>>(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// A server name: 1 to [`MAX_NAME`] letters, digits and `-`. No `_`: it
/// separates the server from the tool in `{server}_{tool}`, and a tool's
/// own name may contain one.
pub fn check_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            format!(
                "'name' must be 1 to {MAX_NAME} letters, digits or '-' (tools are named '{{server}}_{{tool}}')."
            ),
        ))
    }
}

/// Set (a value) or remove (`null`) the entries `changes` names.
fn merge(map: &mut BTreeMap<String, Secret>, changes: Option<BTreeMap<String, Option<Secret>>>) {
    for (name, value) in changes.unwrap_or_default() {
        match value {
            Some(v) => map.insert(name, v),
            None => map.remove(&name),
        };
    }
}

/// The secret a header value refers to: `env:NAME`, or `Scheme env:NAME`.
pub fn secret_reference(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = match value.split_once(' ') {
        Some((scheme, rest)) => (scheme, rest),
        None => ("", value),
    };
    rest.strip_prefix(crate::secret::ENV_REF)
        .map(|name| (scheme, name))
}

fn check_header(name: &str, value: &str, declared: &impl Fn(&str) -> bool) -> Result<(), Invalid> {
    let lower = name.to_ascii_lowercase();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err()
        || RESERVED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("proxy-")
    {
        return Err(invalid(
            "headers",
            format!("'{name}' cannot be a server header (a reserved or invalid header name)."),
        ));
    }
    if value.is_empty()
        || value.len() > MAX_HEADER_VALUE
        || http::HeaderValue::from_str(value).is_err()
        || value.chars().any(char::is_control)
    {
        return Err(invalid(
            "headers",
            format!("The value of '{name}' must be 1 to {MAX_HEADER_VALUE} visible characters."),
        ));
    }
    check_reference("headers", name, value, declared)
}

/// A variable of a command's environment: a portable name, and a value
/// without NUL; `MG_*` and `AWS_*` are the gateway's own.
fn check_variable(
    name: &str,
    value: &str,
    declared: &impl Fn(&str) -> bool,
) -> Result<(), Invalid> {
    let upper = name.to_ascii_uppercase();
    let portable = name.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !portable || upper.starts_with("MG_") || upper.starts_with("AWS_") {
        return Err(invalid(
            "env",
            format!("'{name}' cannot be a variable (letters, digits and '_'; not MG_* or AWS_*)."),
        ));
    }
    if value.len() > MAX_HEADER_VALUE || value.contains('\0') {
        return Err(invalid(
            "env",
            format!(
                "The value of '{name}' must be at most {MAX_HEADER_VALUE} characters, without NUL."
            ),
        ));
    }
    check_reference("env", name, value, declared)
}

/// A value naming `env:NAME` must name a declared secret.
fn check_reference(
    param: &'static str,
    name: &str,
    value: &str,
    declared: &impl Fn(&str) -> bool,
) -> Result<(), Invalid> {
    match secret_reference(value) {
        Some((_, secret)) if !declared(secret) => Err(invalid(
            param,
            format!(
                "'{name}' refers to {}{secret}, which is not a declared upstream secret (MG_UPSTREAM_SECRETS).",
                crate::secret::ENV_REF
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
