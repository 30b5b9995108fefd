//! `modelgate mcp-servers ...`: upstream MCP servers through the admin API.

use clap::Subcommand;
use serde_json::{Map, Value, json};

/// `modelgate mcp-servers ...`
#[derive(Debug, Subcommand)]
pub enum McpServersCmd {
    /// Add an upstream MCP server: Streamable HTTP (`--url`), or local, a
    /// command run over stdio on the native server (after `--`: `add
    /// --name files -- npx -y @modelcontextprotocol/server-filesystem /srv`).
    Add {
        /// Unique name: letters, digits and '-' (its tools reach clients
        /// as `{name}_{tool}`).
        #[arg(long)]
        name: String,
        /// Its Streamable HTTP endpoint, e.g. https://mcp.example.com/mcp
        #[arg(long, required_unless_present = "command")]
        url: Option<String>,
        /// A header sent on every call, "Name: value"; the value may name a
        /// declared upstream secret instead of holding it:
        /// "Authorization: Bearer env:GITHUB_TOKEN". Repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// A variable of a local server's environment, "NAME=value" (the
        /// value may be env:SECRET). Repeatable.
        #[arg(long = "env")]
        env: Vec<String>,
        /// A local server's program and arguments (its program among those
        /// of MG_MCP_COMMANDS).
        #[arg(last = true, conflicts_with = "url")]
        command: Vec<String>,
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

/// `Name<sep>value` arguments as an object.
fn pairs(args: &[String], sep: char, usage: &str) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for arg in args {
        let (k, v) = arg
            .split_once(sep)
            .ok_or_else(|| format!("{usage}, not {arg:?}"))?;
        map.insert(k.trim().to_owned(), v.trim().into());
    }
    Ok(map)
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
            env,
            command,
            timeout_ms,
            rpm,
            disabled,
        } => {
            let h = pairs(&headers, ':', "--header takes \"Name: value\"")?;
            let mut b = json!({"name": name, "headers": h, "enabled": !disabled});
            if let Some(url) = url {
                b["url"] = url.into();
            } else {
                b["command"] = command.into();
                b["env"] = pairs(&env, '=', "--env takes \"NAME=value\"")?.into();
            }
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
