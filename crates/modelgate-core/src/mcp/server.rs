//! Upstream MCP servers as an operator declares them: a name (the prefix of
//! its tools' names), a Streamable HTTP URL, the headers that carry its
//! credentials, and a deadline per call. What a server may be is decided
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
    /// Streamable HTTP endpoint. Admin-only; never in client answers.
    pub url: String,
    /// Headers sent on every upstream request (credentials): a literal, or
    /// `env:NAME` (optionally after a scheme, `Bearer env:NAME`) naming a
    /// declared upstream secret. Never in an answer.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
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
    /// Streamable HTTP endpoint.
    pub url: String,
    /// Headers with their values.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
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
    /// New URL.
    pub url: Option<String>,
    /// Headers to set (a value) or remove (`null`); headers not named keep
    /// theirs, so a patch need not repeat a credential it does not change.
    pub headers: Option<BTreeMap<String, Option<Secret>>>,
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
            url: spec.url.trim_end_matches('/').to_owned(),
            headers: spec.headers,
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
        crate::patch::set(
            &mut s.url,
            patch.url.map(|u| u.trim_end_matches('/').to_owned()),
        );
        for (name, value) in patch.headers.unwrap_or_default() {
            match value {
                Some(v) => s.headers.insert(name, v),
                None => s.headers.remove(&name),
            };
        }
        crate::patch::set(&mut s.enabled, patch.enabled);
        if let Some(t) = patch.timeout_ms {
            s.timeout_ms = t.unwrap_or(DEFAULT_TIMEOUT_MS);
        }
        crate::patch::set(&mut s.rpm, patch.rpm);
        s.updated_at = now_ms.max(self.updated_at + 1);
        s
    }

    /// Check everything but the URL's address policy and the secrets
    /// (the gateway's settings decide those): `declared` tells whether an
    /// `env:NAME` names a declared upstream secret.
    pub fn check(&self, declared: impl Fn(&str) -> bool) -> Result<(), Invalid> {
        check_name(&self.name)?;
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

    /// The server as the admin API shows it: header names, never values.
    pub fn admin_view(&self) -> Value {
        json!({
            "id": self.id,
            "object": "mcp_server",
            "name": self.name,
            "url": self.url,
            "headers": self.headers.keys().collect::<Vec<_>>(),
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
    match secret_reference(value) {
        Some((_, secret)) if !declared(secret) => Err(invalid(
            "headers",
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
