//! `modelgate mcp-servers ...`: upstream MCP servers through the admin API.

use clap::Subcommand;
use serde_json::{Map, Value, json};

/// `modelgate mcp-servers ...`
#[derive(Debug, Subcommand)]
pub enum McpServersCmd {
    /// Add an upstream MCP server (Streamable HTTP).
    Add {
        /// Unique name: letters, digits and '-' (its tools reach clients
        /// as `{name}_{tool}`).
        #[arg(long)]
        name: String,
        /// Its Streamable HTTP endpoint, e.g. https://mcp.example.com/mcp
        #[arg(long)]
        url: String,
        /// A header sent on every call, "Name: value"; the value may name a
        /// declared upstream secret instead of holding it:
        /// "Authorization: Bearer env:GITHUB_TOKEN". Repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Deadline of one call, ms (default 60000).
        #[arg(long)]
        timeout_ms: Option<u32>,
        /// Tool calls a minute each key may make to it (default: no limit).
        #[arg(long)]
        rpm: Option<u32>,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List servers (header names, never their values).
    List,
    /// Show one server.
    Get {
        /// Server id.
        id: String,
    },
    /// Change a server with a JSON patch, e.g. '{"enabled":false}' or
    /// '{"headers":{"X-Team":null}}' (null removes a header).
    Update {
        /// Server id.
        id: String,
        /// JSON object of fields to change.
        json: String,
    },
    /// Delete a server.
    Delete {
        /// Server id.
        id: String,
    },
}

/// The admin API call for `cmd`.
pub(super) fn request(cmd: McpServersCmd) -> Result<(http::Method, String, Value), String> {
    use http::Method;
    const BASE: &str = "/admin/api/mcp/servers";
    Ok(match cmd {
        McpServersCmd::Add {
            name,
            url,
            headers,
            timeout_ms,
            rpm,
            disabled,
        } => {
            let mut h = Map::new();
            for header in headers {
                let (k, v) = header
                    .split_once(':')
                    .ok_or_else(|| format!("--header takes \"Name: value\", not {header:?}"))?;
                h.insert(k.trim().to_owned(), v.trim().into());
            }
            let mut b = json!({"name": name, "url": url, "headers": h, "enabled": !disabled});
            if let Some(t) = timeout_ms {
                b["timeout_ms"] = t.into();
            }
            if let Some(r) = rpm {
                b["rpm"] = r.into();
            }
            (Method::POST, BASE.into(), b)
        }
        McpServersCmd::List => (Method::GET, BASE.into(), Value::Null),
        McpServersCmd::Get { id } => (Method::GET, format!("{BASE}/{id}"), Value::Null),
        McpServersCmd::Update { id, json } => (
            Method::PATCH,
            format!("{BASE}/{id}"),
            super::patch_body(&json)?,
        ),
        McpServersCmd::Delete { id } => (Method::DELETE, format!("{BASE}/{id}"), Value::Null),
    })
}
