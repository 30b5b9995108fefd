//! An upstream server's tools: read page by page, held to the definitions
//! pinned for it (see [`crate::mcp::pins`]), named as clients see them; and
//! the admin's view of them, with the acceptance of what changed.

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::mcp_upstream::Failure;
use super::{Gateway, Response, json_response};
use crate::error::{GatewayError, RequestError, UpstreamError};
use crate::mcp::McpServer;
use crate::mcp::pins::{self, Standing};
use crate::mcp::session::Upstream;
use crate::ports::{McpServerStore, Ports};

/// Most pages of one server's tool list read.
const MAX_PAGES: usize = 16;

/// A tool's name as clients see it, if it is a valid OpenAI function name
/// (`^[A-Za-z0-9_-]{1,64}$`); a tool whose name would not be is not listed
/// rather than renamed by a guess.
fn exposed_name(server: &str, tool: &str) -> Option<String> {
    let name = format!("{server}_{tool}");
    let ok = name.len() <= 64
        && !tool.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(name)
}

impl<P: Ports> Gateway<P> {
    /// One server's tools as it lists them, every page.
    pub(super) async fn server_tools(
        &self,
        server: &McpServer,
        upstream: &Upstream,
    ) -> Result<Vec<Value>, Failure> {
        self.server_list(server, upstream, "tools/list", "tools")
            .await
    }

    /// Every page of what `server` lists under `method`, the `field` of
    /// each page's result.
    pub(super) async fn server_list(
        &self,
        server: &McpServer,
        upstream: &Upstream,
        method: &str,
        field: &str,
    ) -> Result<Vec<Value>, Failure> {
        let mut items = Vec::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor
                .take()
                .map_or_else(|| json!({}), |c| json!({"cursor": c}));
            let req = json!({"jsonrpc": "2.0", "id": self.upstream_id(), "method": method, "params": params});
            let answer = self
                .mcp_exchange(server, Method::POST, Some(upstream), Some(&req))
                .await?;
            let result = answer.response.as_ref().and_then(|r| r.get("result"));
            let Some(result) = result else {
                return Err(Failure::Refused(answer.status));
            };
            let page = result.get(field).and_then(Value::as_array);
            items.extend(page.into_iter().flatten().cloned());
            match result.get("nextCursor") {
                Some(c) if !c.is_null() => cursor = Some(c.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// One server's tools as clients see them: pinned the first time they
    /// are listed, then only those whose definition is still the accepted
    /// one, named `{server}_{tool}`.
    pub(super) async fn listed_tools(
        &self,
        server: &McpServer,
        upstream: &Upstream,
    ) -> Result<Vec<Value>, Failure> {
        let tools = self.server_tools(server, upstream).await?;
        if server.pins.is_empty() && !tools.is_empty() {
            self.pin(server, pins::pin_all(&tools)).await;
        }
        let mut listed = Vec::new();
        for tool in tools {
            let original = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            let standing = pins::standing(&server.pins, original, &pins::definition_hash(&tool));
            if standing != Standing::Pinned {
                tracing::warn!(
                    server = server.name,
                    tool = original,
                    standing = standing.as_str(),
                    "MCP tool held back until an admin accepts its definition"
                );
                continue;
            }
            match exposed_name(&server.name, original) {
                Some(name) => {
                    let mut tool = tool;
                    tool["name"] = Value::String(name);
                    listed.push(tool);
                }
                None => tracing::warn!(
                    server = server.name,
                    tool = original,
                    "MCP tool not listed: its name is not a valid function name as {{server}}_{{tool}}"
                ),
            }
        }
        Ok(listed)
    }

    /// Keep `pins` as the server's accepted definitions (if it did not
    /// change meanwhile: then whoever changed it decided).
    async fn pin(
        &self,
        server: &McpServer,
        pins: std::collections::BTreeMap<String, String>,
    ) -> bool {
        let mut pinned = server.clone();
        pinned.pins = pins;
        pinned.updated_at = self.now_ms().max(server.updated_at + 1);
        let store = self.ports().store();
        let written = store.replace_mcp_server(server, &pinned).await;
        self.inner.records.mcp_servers_changed();
        match written {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(server = server.name, error = %e, "MCP tool pins not written");
                false
            }
        }
    }

    /// The server's tools now, each with where it stands, for an admin:
    /// a session of the gateway's own, opened and ended for the purpose.
    async fn tools_now(&self, server: &McpServer) -> Result<Vec<Value>, GatewayError> {
        let upstream = self
            .open_upstream(server, crate::mcp::versions::LATEST_HANDSHAKE, &Map::new())
            .await;
        let unreachable = || {
            UpstreamError::McpServer(format!(
                "MCP server '{}' did not list its tools.",
                server.name
            ))
        };
        let upstream = upstream.ok_or_else(unreachable)?;
        let tools = self.server_tools(server, &upstream).await;
        if upstream.session.is_some() {
            let _ = self
                .mcp_exchange(server, Method::DELETE, Some(&upstream), None)
                .await;
        }
        tools.map_err(|_| unreachable().into())
    }

    /// `GET /admin/api/mcp/servers/{id}/tools`: what the server lists now,
    /// each tool `pinned`, `changed` or `new`.
    pub(super) async fn admin_server_tools(
        &self,
        server: &McpServer,
    ) -> Result<Response<P>, GatewayError> {
        let tools = self.tools_now(server).await?;
        let data: Vec<Value> = tools
            .iter()
            .map(|t| {
                let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
                let standing = pins::standing(&server.pins, name, &pins::definition_hash(t));
                json!({"name": name, "exposed_as": exposed_name(&server.name, name),
                       "standing": standing.as_str(), "definition": t})
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": data}),
        ))
    }

    /// `POST /admin/api/mcp/servers/{id}/tools/accept`: pin what the server
    /// lists now; changed and new tools reach clients from then on.
    pub(super) async fn accept_server_tools(
        &self,
        server: &McpServer,
    ) -> Result<Response<P>, GatewayError> {
        let tools = self.tools_now(server).await?;
        let pins = pins::pin_all(&tools);
        let accepted: Vec<&String> = pins.keys().collect();
        let answer = json!({"id": server.id, "accepted": accepted});
        if !self.pin(server, pins.clone()).await {
            return Err(RequestError::Conflict("A newer version of this MCP server".into()).into());
        }
        Ok(json_response(StatusCode::OK, &answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_names_are_function_names_or_nothing() {
        assert_eq!(
            exposed_name("github", "create_issue").as_deref(),
            Some("github_create_issue")
        );
        assert_eq!(
            exposed_name("a-b", "get-sum").as_deref(),
            Some("a-b_get-sum")
        );
        assert_eq!(exposed_name("s", "dotted.name"), None);
        assert_eq!(exposed_name("s", ""), None);
        assert_eq!(exposed_name("s", &"t".repeat(63)), None);
        assert!(exposed_name("s", &"t".repeat(62)).is_some());
    }
}
