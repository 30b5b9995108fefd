//! The MCP gateway to a client in the stateless era (2026-07-28): one that
//! sends `MCP-Protocol-Version: 2026-07-28` gets `server/discover` and
//! everything else without a session, each request held to its routing
//! headers. Servers are reached as [`super::mcp_open`] says: a server that
//! only has sessions gets one for that request, ended after it.

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::ALLOW;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use super::mcp_answer::{accepted, accepts_sse, capabilities, not_served, reply};
use super::mcp_calls::Call;
use super::mcp_upstream::VERSION;
use super::{Body, Gateway, Response};
use crate::domain::ApiKey;
use crate::error::GatewayError;
use crate::mcp::jsonrpc::{self, Message};
use crate::mcp::modern::{self, MODERN, Routing};
use crate::ports::Ports;

/// The routing headers of `headers`.
fn routing(headers: &HeaderMap) -> Routing<'_> {
    let one = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let duplicated = [VERSION, modern::METHOD_HEADER, modern::NAME_HEADER]
        .into_iter()
        .find(|name| headers.get_all(*name).iter().count() > 1);
    Routing {
        version: one(VERSION),
        method: one(modern::METHOD_HEADER),
        name: one(modern::NAME_HEADER),
        duplicated,
    }
}

/// The client's `Mcp-Param-*` headers, which an intermediary passes on.
fn param_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with(modern::PARAM_HEADER_PREFIX))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

impl<P: Ports> Gateway<P> {
    /// A stateless-era request (the key and `Origin` already checked).
    pub(super) async fn mcp_modern(
        &self,
        req: http::Request<Bytes>,
        key: &ApiKey,
        only: Option<String>,
        request_id: &str,
        span: &tracing::Span,
    ) -> Result<Response<P>, GatewayError> {
        if req.method() != Method::POST {
            let mut resp = http::Response::new(Body::Full(Bytes::new()));
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return Ok(resp);
        }
        let (id, method, params) = match jsonrpc::parse(req.body()) {
            Ok(Message::Request { id, method, params }) => (id, method, params),
            Ok(Message::Notification { .. }) => return Ok(accepted()),
            Ok(Message::Response { .. }) => {
                let message = "A client posts requests and notifications only.";
                let body = jsonrpc::error(&Value::Null, jsonrpc::INVALID_REQUEST, message);
                return Ok(reply(body, true));
            }
            Err(bad) => {
                let body = jsonrpc::error(&Value::Null, bad.code, &bad.message);
                return Ok(reply(body, true));
            }
        };
        self.name_mcp_span(span, &method, &params);
        if let Err(refusal) = modern::check(&routing(req.headers()), &method, &params, &[MODERN]) {
            return Ok(reply(refusal.answer(&id), true));
        }
        let call = Call {
            key,
            session: None,
            session_token: None,
            only: only.as_deref(),
            request_id,
            sse: accepts_sse(req.headers()),
            modern: true,
            forwarded: param_headers(req.headers()),
        };
        match method.as_str() {
            "server/discover" => Ok(reply(jsonrpc::result(&id, discovered()), true)),
            "tools/list" if params.contains_key("cursor") => {
                let body = jsonrpc::error(&id, jsonrpc::INVALID_PARAMS, "Unknown cursor.");
                Ok(reply(body, true))
            }
            "tools/list" => {
                let servers = self.mcp_servers(key, call.only).await?;
                let none = Map::new();
                let opened =
                    join_all(servers.iter().map(|s| self.open_upstream(s, MODERN, &none))).await;
                let open: Vec<_> = servers
                    .into_iter()
                    .zip(opened)
                    .filter_map(|(s, u)| Some((s, u?)))
                    .collect();
                let tools = self.gather_tools(&call, &open).await;
                self.end_sessions(&open).await;
                // A server whose session ended at once just has no tools.
                let tools = tools.unwrap_or_default();
                // What a key may use changes when an admin says so: no
                // client or shared cache may keep the list.
                let result = json!({"tools": tools, "ttlMs": 0, "cacheScope": "private"});
                Ok(reply(jsonrpc::result(&id, result), true))
            }
            "tools/call" => self.mcp_call_tool(call, id, params).await,
            "prompts/list" | "resources/list" | "resources/templates/list" => {
                self.mcp_catalog_list(&call, &id, &method).await
            }
            "prompts/get" | "resources/read" | "completion/complete" => {
                self.mcp_catalog_get(&call, id, &method, params).await
            }
            "subscriptions/listen" => self.mcp_subscribe(&call, id, &params).await,
            _ => Ok(reply(not_served(&id, &method), true)),
        }
    }
}

/// What `server/discover` answers: every version the gateway serves, the
/// tools it gathers (and subscriptions to their changes), and who it is.
fn discovered() -> Value {
    json!({
        "supportedVersions": crate::mcp::versions::SERVED,
        "capabilities": capabilities(true),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {modern::SERVER_INFO_KEY: {"name": "modelgate", "version": env!("CARGO_PKG_VERSION")}},
    })
}
