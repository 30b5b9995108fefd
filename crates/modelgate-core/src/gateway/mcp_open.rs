//! Reaching an upstream MCP server in the client's era where the server
//! has it, else in the one it has: a handshake-era client's session opens
//! one with the server (`initialize`, then `initialized`), falling back to
//! the stateless era for a server that only speaks that; a stateless
//! client's request asks `server/discover` first, falling back to a
//! session of its own. The same era both sides keeps a session's state
//! (its log level, say) where the client put it. What a server said of its
//! eras is remembered for a while ([`super::mcp_eras`]).

use http::Method;
use serde_json::{Map, Value, json};

use super::Gateway;
use super::mcp_upstream::{Answer, Failure};
use crate::mcp::McpServer;
use crate::mcp::modern::MODERN;
use crate::mcp::session::Upstream;
use crate::ports::Ports;

impl<P: Ports> Gateway<P> {
    /// `server`'s side for a client at `version` (the modern one, or a
    /// handshake-era one); `None` if it cannot be reached in either era,
    /// so its tools are simply absent.
    pub(super) async fn open_upstream(
        &self,
        server: &McpServer,
        version: &str,
        offered: &Map<String, Value>,
    ) -> Option<Upstream> {
        let first = if version == MODERN {
            match self.inner.mcp_eras.stateless(server, self.now_ms()) {
                Some(true) => return Some(stateless()),
                // Known to have sessions only: no need to ask again.
                Some(false) => Ok(None),
                None => self.discover_upstream(server).await,
            }
        } else {
            self.initialize_upstream(server, version, offered).await
        };
        let opened = match first {
            Ok(Some(u)) => return Some(u),
            // It answered, in the other era.
            Ok(None) if version == MODERN => {
                let latest = crate::mcp::versions::LATEST_HANDSHAKE;
                self.initialize_upstream(server, latest, &Map::new()).await
            }
            Ok(None) => self.discover_upstream(server).await,
            Err(e) => Err(e),
        };
        match opened {
            Ok(Some(u)) => Some(u),
            Ok(None) => {
                tracing::warn!(server = server.name, "MCP server speaks neither era");
                None
            }
            Err(e) => {
                tracing::warn!(server = server.name, "MCP server not reached: {e:?}");
                None
            }
        }
    }

    /// A session with `server` at `version` (or the version it counters
    /// with), offering it the client capabilities `offered`; `Ok(None)`
    /// when it answers without one (a stateless server).
    async fn initialize_upstream(
        &self,
        server: &McpServer,
        version: &str,
        offered: &Map<String, Value>,
    ) -> Result<Option<Upstream>, Failure> {
        let init = json!({
            "jsonrpc": "2.0", "id": self.upstream_id(), "method": "initialize",
            "params": {
                "protocolVersion": version,
                "capabilities": offered,
                "clientInfo": {"name": "modelgate", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let Some(answer) = self.era_answer(server, None, &init).await? else {
            return Ok(None);
        };
        let agreed = answer
            .response
            .as_ref()
            .and_then(|r| r.pointer("/result/protocolVersion"))
            .and_then(Value::as_str);
        let Some(agreed) = agreed else {
            return Ok(None);
        };
        let upstream = Upstream {
            session: answer.session,
            version: agreed.to_owned(),
        };
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.mcp_exchange(server, Method::POST, Some(&upstream), Some(&done))
            .await?;
        Ok(Some(upstream))
    }

    /// `server` in the stateless era, if it answers `server/discover` with
    /// the modern version; `Ok(None)` when it answers otherwise (it has
    /// sessions).
    async fn discover_upstream(&self, server: &McpServer) -> Result<Option<Upstream>, Failure> {
        let probe = stateless();
        let req = json!({"jsonrpc": "2.0", "id": self.upstream_id(), "method": "server/discover", "params": {}});
        let Some(answer) = self.era_answer(server, Some(&probe), &req).await? else {
            self.inner.mcp_eras.keep(server, false, self.now_ms());
            return Ok(None);
        };
        let versions = answer
            .response
            .as_ref()
            .and_then(|r| r.pointer("/result/supportedVersions"))
            .and_then(Value::as_array);
        let modern = versions.is_some_and(|v| v.iter().any(|v| v == MODERN));
        self.inner.mcp_eras.keep(server, modern, self.now_ms());
        Ok(modern.then_some(probe))
    }

    /// The answer to `req`; `None` when the server refused it outright (a
    /// request of the era it does not speak).
    async fn era_answer(
        &self,
        server: &McpServer,
        upstream: Option<&Upstream>,
        req: &Value,
    ) -> Result<Option<Answer>, Failure> {
        match self
            .mcp_exchange(server, Method::POST, upstream, Some(req))
            .await
        {
            Ok(a) => Ok(Some(a)),
            Err(Failure::Refused(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A server's side in the stateless era: no session.
fn stateless() -> Upstream {
    Upstream {
        session: None,
        version: MODERN.to_owned(),
    }
}
