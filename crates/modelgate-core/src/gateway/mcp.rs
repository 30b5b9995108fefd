//! The MCP gateway's endpoint (`/mcp`, `/mcp/{server}`), handshake era
//! (2025-03-26 to 2025-11-25): the client opens one session with the
//! gateway, which opens one with each upstream server and seals their ids
//! into the client's `Mcp-Session-Id`; `tools/list` gathers every server's
//! tools as `{server}_{tool}`, `tools/call` routes to the server the name
//! names. The client's key authenticates it here and never travels on.

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{HOST, ORIGIN};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};
use tracing::Instrument;

use super::mcp_answer::{accepted, accepts_sse, capabilities, not_served, rpc, session_ended};
use super::mcp_back::listening;
use super::mcp_calls::{Call, call_id};
use super::mcp_upstream::{Failure, SESSION, VERSION};
use super::{Gateway, Peer, Response};
use crate::domain::ApiKey;
use crate::error::{AuthError, GatewayError, RequestError};
use crate::mcp::McpServer;
use crate::mcp::jsonrpc::{self, Message};
use crate::mcp::session::{NONCE, Session, Upstream};
use crate::mcp::versions::{HANDSHAKE, LATEST_HANDSHAKE, SERVED};
use crate::mcp::{modern, relay};
use crate::ports::Ports;

/// The body of an HTTP-level refusal on an MCP route (no request id known).
pub(super) fn http_error_body(status: StatusCode, message: &str) -> Value {
    let code = match status.as_u16() {
        400 | 405 | 413 | 415 => jsonrpc::INVALID_REQUEST,
        500.. => jsonrpc::INTERNAL_ERROR,
        _ => jsonrpc::REFUSED,
    };
    jsonrpc::error(&Value::Null, code, message)
}

impl<P: Ports> Gateway<P> {
    /// `/mcp` and `/mcp/{server}`, in the request's span (in the client's
    /// trace when it sent one; the servers' requests carry it on).
    pub(super) async fn mcp(
        &self,
        req: http::Request<Bytes>,
        peer: Peer,
        only: Option<String>,
        request_id: &str,
    ) -> Result<Response<P>, GatewayError> {
        let span = crate::observe::mcp_span(request_id);
        match meta_trace(&req) {
            Some(headers) => self.ports().adopt_trace(&span, &headers),
            None => self.ports().adopt_trace(&span, req.headers()),
        }
        self.mcp_answer(req, peer, only, request_id, &span)
            .instrument(span.clone())
            .await
    }

    async fn mcp_answer(
        &self,
        req: http::Request<Bytes>,
        peer: Peer,
        only: Option<String>,
        request_id: &str,
        span: &tracing::Span,
    ) -> Result<Response<P>, GatewayError> {
        let key = self.key_of(&req, peer).await?;
        check_origin(req.headers())?;
        match req.headers().get(VERSION).map(HeaderValue::to_str) {
            Some(Ok(modern::MODERN)) => {
                return self.mcp_modern(req, &key, only, request_id, span).await;
            }
            Some(Ok(v)) if HANDSHAKE.contains(&v) => {}
            None => {}
            Some(v) => {
                let refusal = modern::unsupported(v.unwrap_or("?"), &SERVED);
                return Ok(rpc(StatusCode::BAD_REQUEST, &refusal.answer(&Value::Null)));
            }
        }
        if req.method() == Method::DELETE {
            let session = self.mcp_session(&req, &key, only.as_deref())?;
            self.end_upstreams(&session).await;
            return Ok(rpc(StatusCode::OK, &json!({})));
        }
        if req.method() == Method::GET {
            let session = self.mcp_session(&req, &key, only.as_deref())?;
            let stream = self.mcp_listen(&key, &session, only.is_none()).await?;
            return Ok(listening(stream));
        }
        let message = match jsonrpc::parse(req.body()) {
            Ok(m) => m,
            Err(bad) => {
                let body = jsonrpc::error(&Value::Null, bad.code, &bad.message);
                return Ok(rpc(StatusCode::BAD_REQUEST, &body));
            }
        };
        let (id, method, params) = match message {
            Message::Request { id, method, params } => (id, method, params),
            // Nothing the gateway relays asks the client anything, and a
            // notification needs no answer.
            Message::Notification { method, params } if method == "notifications/cancelled" => {
                // Cancelling a request of this session's (anything else is
                // nobody's to cancel).
                if let Ok(session) = self.mcp_session(&req, &key, only.as_deref()) {
                    let token = session_token(&req).unwrap_or_default();
                    self.cancel_upstream(&key, &session, token, &params).await?;
                }
                return Ok(accepted());
            }
            Message::Response { id, message } => {
                let session = self.mcp_session(&req, &key, only.as_deref())?;
                return self.relay_answer(&key, &session, &id, message).await;
            }
            Message::Notification { .. } => return Ok(accepted()),
        };
        self.name_mcp_span(span, &method, &params);
        if method == "initialize" {
            return self.mcp_initialize(&key, only, &id, &params).await;
        }
        let session = self.mcp_session(&req, &key, only.as_deref())?;
        let call = Call {
            key: &key,
            session: Some(&session),
            session_token: session_token(&req),
            only: only.as_deref(),
            request_id,
            sse: accepts_sse(req.headers()),
            modern: false,
            forwarded: Vec::new(),
        };
        self.session_request(call, &session, id, &method, params)
            .await
    }

    /// A request in a client's session.
    async fn session_request(
        &self,
        call: Call<'_>,
        session: &Session,
        id: Value,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<Response<P>, GatewayError> {
        let key = call.key;
        match method {
            "ping" => Ok(rpc(StatusCode::OK, &jsonrpc::result(&id, json!({})))),
            "tools/list" if params.contains_key("cursor") => Ok(rpc(
                StatusCode::OK,
                &jsonrpc::error(&id, jsonrpc::INVALID_PARAMS, "Unknown cursor."),
            )),
            "tools/list" => {
                let servers = self.session_servers(key, session).await?;
                match self.gather_tools(&call, &servers).await {
                    Ok(tools) => Ok(rpc(
                        StatusCode::OK,
                        &jsonrpc::result(&id, json!({"tools": tools})),
                    )),
                    Err(ended) => Ok(session_ended(&id, &ended)),
                }
            }
            "tools/call" => self.mcp_call_tool(call, id, params).await,
            "prompts/list" | "resources/list" | "resources/templates/list" => {
                self.mcp_catalog_list(&call, &id, method).await
            }
            "prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "completion/complete" => self.mcp_catalog_get(&call, id, method, params).await,
            "logging/setLevel" => {
                let servers = self.session_servers(key, session).await?;
                self.set_log_level(&servers, &params).await;
                Ok(rpc(StatusCode::OK, &jsonrpc::result(&id, json!({}))))
            }
            _ => Ok(rpc(StatusCode::OK, &not_served(&id, method))),
        }
    }

    /// Name the request's span for its method (and tool), as agentgateway
    /// names them.
    pub(super) fn name_mcp_span(
        &self,
        span: &tracing::Span,
        method: &str,
        params: &Map<String, Value>,
    ) {
        span.record("mcp.method.name", method);
        let tool = params.get("name").and_then(Value::as_str);
        let name = match (method, tool) {
            ("tools/call", Some(tool)) => {
                span.record("gen_ai.tool.name", tool);
                format!("{method} {tool}")
            }
            _ => method.to_owned(),
        };
        self.ports().name_span(span, name);
    }

    /// The client's session: 400 without one, 404 for one this gateway did
    /// not seal, that another key opened, or that was opened for another
    /// route (the client then starts a new one).
    fn mcp_session(
        &self,
        req: &http::Request<Bytes>,
        key: &ApiKey,
        only: Option<&str>,
    ) -> Result<Session, GatewayError> {
        let token = req
            .headers()
            .get(SESSION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RequestError::invalid("Mcp-Session-Id is missing: send initialize first.", None)
            })?;
        Session::open(token, &self.inner.mcp_key)
            .filter(|s| s.key_id == key.id && s.only.as_deref() == only)
            .ok_or_else(|| RequestError::NotFound("MCP session".into()).into())
    }

    /// The enabled servers `key` may reach on this route.
    pub(super) async fn mcp_servers(
        &self,
        key: &ApiKey,
        only: Option<&str>,
    ) -> Result<Vec<McpServer>, GatewayError> {
        let servers = self.mcp_server_list().await?;
        let usable: Vec<McpServer> = servers
            .into_iter()
            .filter(|s| s.enabled && only.is_none_or(|o| o == s.name))
            .filter(|s| crate::mcp::access::allows(&key.allowed_tools, &s.name, None))
            .collect();
        if let (Some(name), true) = (only, usable.is_empty()) {
            return Err(RequestError::NotFound(format!("MCP server '{name}'")).into());
        }
        Ok(usable)
    }

    async fn mcp_initialize(
        &self,
        key: &ApiKey,
        only: Option<String>,
        id: &Value,
        params: &Map<String, Value>,
    ) -> Result<Response<P>, GatewayError> {
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        let version = asked
            .filter(|v| HANDSHAKE.contains(v))
            .unwrap_or(LATEST_HANDSHAKE);
        let servers = self.mcp_servers(key, only.as_deref()).await?;
        // Servers may ask what the client offered (their requests are
        // relayed during calls).
        let offered = relay::offered(params);
        let opened = join_all(
            servers
                .iter()
                .map(|s| self.open_upstream(s, version, &offered)),
        )
        .await;
        let upstreams = servers
            .iter()
            .zip(opened)
            .filter_map(|(s, u)| Some((s.id.clone(), u?)))
            .collect();
        let session = Session {
            key_id: key.id.clone(),
            version: version.to_owned(),
            only,
            upstreams,
            opened_ms: self.now_ms(),
        };
        let mut nonce = [0u8; NONCE];
        self.ports().fill_random(&mut nonce);
        let token = session.seal(&self.inner.mcp_key, nonce);
        let result = json!({
            "protocolVersion": version,
            "capabilities": capabilities(true),
            "serverInfo": {"name": "modelgate", "version": env!("CARGO_PKG_VERSION")},
        });
        let mut resp = rpc(StatusCode::OK, &jsonrpc::result(id, result));
        if let Ok(v) = HeaderValue::try_from(token) {
            resp.headers_mut().insert(SESSION, v);
        }
        Ok(resp)
    }

    /// Pass a client's `notifications/cancelled` on to the session's
    /// servers, under the id the gateway asked them by.
    async fn cancel_upstream(
        &self,
        key: &ApiKey,
        session: &Session,
        token: &str,
        params: &Map<String, Value>,
    ) -> Result<(), GatewayError> {
        let Some(asked) = params.get("requestId") else {
            return Ok(());
        };
        let mut params = params.clone();
        params.insert("requestId".into(), Value::String(call_id(token, asked)));
        let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params});
        let servers = self.session_servers(key, session).await?;
        let sends = servers
            .iter()
            .map(|(s, u)| self.mcp_exchange(s, Method::POST, Some(u), Some(&note)));
        join_all(sends).await;
        Ok(())
    }

    /// The session's log level, set on each of its servers (best effort:
    /// one that has no logging just sends no messages).
    async fn set_log_level(&self, servers: &[(McpServer, Upstream)], params: &Map<String, Value>) {
        let sets = servers.iter().map(|(s, u)| {
            let req = json!({"jsonrpc": "2.0", "id": self.upstream_id(), "method": "logging/setLevel", "params": params});
            async move { self.mcp_exchange(s, Method::POST, Some(u), Some(&req)).await }
        });
        join_all(sets).await;
    }

    /// End every upstream session of `session` (best effort).
    async fn end_upstreams(&self, session: &Session) {
        let Ok(servers) = self.mcp_server_list().await else {
            return;
        };
        let open: Vec<(McpServer, Upstream)> = servers
            .into_iter()
            .filter_map(|s| {
                let u = session.upstreams.get(&s.id)?.clone();
                Some((s, u))
            })
            .collect();
        self.end_sessions(&open).await;
    }

    /// End the servers' sessions among `open` (best effort; a stateless
    /// server has none).
    pub(super) async fn end_sessions(&self, open: &[(McpServer, Upstream)]) {
        let ends = open
            .iter()
            .filter(|(_, u)| u.session.is_some())
            .map(|(s, u)| self.mcp_exchange(s, Method::DELETE, Some(u), None));
        join_all(ends).await;
    }

    /// The session's servers that still exist, are enabled and the key may
    /// still use (its allowlist is read afresh), with their side of the
    /// session.
    pub(super) async fn session_servers(
        &self,
        key: &ApiKey,
        session: &Session,
    ) -> Result<Vec<(McpServer, Upstream)>, GatewayError> {
        let servers = self.mcp_server_list().await?;
        Ok(servers
            .into_iter()
            .filter(|s| s.enabled && crate::mcp::access::allows(&key.allowed_tools, &s.name, None))
            .filter_map(|s| {
                let u = session.upstreams.get(&s.id)?.clone();
                Some((s, u))
            })
            .collect())
    }

    /// The tools of `servers` that `key` may use, as clients see them; a
    /// server that ended its session names itself (the client must start
    /// again), one that fails otherwise is left out.
    pub(super) async fn gather_tools(
        &self,
        call: &Call<'_>,
        servers: &[(McpServer, Upstream)],
    ) -> Result<Vec<Value>, String> {
        let lists = join_all(servers.iter().map(|(s, u)| self.listed_tools(s, u))).await;
        let mut tools = Vec::new();
        for ((server, _), list) in servers.iter().zip(lists) {
            match list {
                Ok(list) => tools.extend(list.into_iter().filter_map(|mut t| {
                    let name = t.get("name")?.as_str()?;
                    let allowed = &call.key.allowed_tools;
                    if !crate::mcp::access::allows(allowed, &server.name, Some(name)) {
                        return None;
                    }
                    t["name"] = Value::String(call.shown(name, '_').to_owned());
                    Some(t)
                })),
                Err(Failure::SessionEnded) => return Err(server.name.clone()),
                Err(e) => tracing::warn!(server = server.name, "MCP tools/list failed: {e:?}"),
            }
        }
        Ok(tools)
    }

    /// A fresh id for a request to a server: never one the client chose,
    /// so ids are not reused within a server's session however many
    /// clients' requests share it, and never guessable.
    pub(super) fn upstream_id(&self) -> Value {
        Value::String(self.new_id("mg-"))
    }
}

/// The client's `Mcp-Session-Id` as it sent it.
fn session_token(req: &http::Request<Bytes>) -> Option<&str> {
    req.headers().get(SESSION)?.to_str().ok()
}

/// A client that sends no `traceparent` header may carry its trace in the
/// request's `_meta` (the way MCP carries it across transports).
fn meta_trace(req: &http::Request<Bytes>) -> Option<http::HeaderMap> {
    // A scan, not a second parse, for the many requests without one.
    let named = req
        .body()
        .windows(TRACEPARENT.len())
        .any(|w| w == TRACEPARENT.as_bytes());
    if req.headers().contains_key(TRACEPARENT) || !named {
        return None;
    }
    let body: Value = serde_json::from_slice(req.body()).ok()?;
    let tp = body.pointer("/params/_meta/traceparent")?.as_str()?;
    let mut headers = http::HeaderMap::new();
    headers.insert(TRACEPARENT, HeaderValue::from_str(tp).ok()?);
    Some(headers)
}

/// The W3C trace context header.
const TRACEPARENT: &str = "traceparent";

/// A browser's request must come from the gateway's own origin (DNS
/// rebinding); clients that are not browsers send no `Origin`.
fn check_origin(headers: &http::HeaderMap) -> Result<(), GatewayError> {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let same = origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host));
    if same {
        Ok(())
    } else {
        Err(AuthError::OriginNotAllowed.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_origin_or_none_passes() {
        let h = |origin: Option<&str>| {
            let mut h = http::HeaderMap::new();
            h.insert(HOST, HeaderValue::from_static("gw.example:8080"));
            if let Some(o) = origin {
                h.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            check_origin(&h).is_ok()
        };
        assert!(h(None));
        assert!(h(Some("http://gw.example:8080")));
        assert!(!h(Some("http://evil.example")));
        assert!(!h(Some("http://gw.example")));
        assert!(!h(Some("null")));
    }
}
