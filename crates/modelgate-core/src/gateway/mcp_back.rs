//! What else a session client of the handshake era sends or opens besides
//! its requests: its answers to what a server asked it during a call,
//! passed back to that server, and its standing stream (`GET /mcp`).

use http::{HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use super::mcp_answer::{accepted, event_stream, rpc};
use super::mcp_listen::ListenStream;
use super::{Gateway, Response};
use crate::domain::ApiKey;
use crate::error::GatewayError;
use crate::mcp::session::Session;
use crate::mcp::{jsonrpc, relay};
use crate::ports::Ports;

impl<P: Ports> Gateway<P> {
    /// The client's answer to a request a server made of it during a call
    /// (relayed under [`relay::relayed_id`]), passed back to that server
    /// under its own id.
    pub(super) async fn relay_answer(
        &self,
        key: &ApiKey,
        session: &Session,
        id: &Value,
        mut message: Value,
    ) -> Result<Response<P>, GatewayError> {
        let servers = self.session_servers(key, session).await?;
        let target = relay::origin(id).and_then(|(server, own)| {
            let found = servers.iter().find(|(s, _)| s.name == server)?;
            Some((found, own))
        });
        let Some(((s, u), own)) = target else {
            let message = "No request of this session's servers has that id.";
            let body = jsonrpc::error(id, jsonrpc::INVALID_REQUEST, message);
            return Ok(rpc(StatusCode::BAD_REQUEST, &body));
        };
        message["id"] = own;
        if let Err(e) = self
            .mcp_exchange(s, Method::POST, Some(u), Some(&message))
            .await
        {
            tracing::warn!(
                server = s.name,
                "MCP server took no answer to its request: {e:?}"
            );
        }
        Ok(accepted())
    }
}

/// The answer to `GET /mcp`: the stream, or a 405 (no server has one).
pub(super) fn listening<P: Ports>(stream: Option<ListenStream<P>>) -> Response<P> {
    match stream {
        Some(s) => event_stream(s),
        None => {
            let mut resp = rpc(StatusCode::METHOD_NOT_ALLOWED, &json!({}));
            let allow = HeaderValue::from_static("POST, DELETE");
            resp.headers_mut().insert(http::header::ALLOW, allow);
            resp
        }
    }
}
