//! The MCP gateway's endpoint (`/mcp`, `/mcp/{server}`), handshake era
//! (2025-03-26 to 2025-11-25): the client opens one session with the
//! gateway, which opens one with each upstream server and seals their ids
//! into the client's `Mcp-Session-Id`; `tools/list` gathers every server's
//! tools as `{server}_{tool}`, `tools/call` routes to the server the name
//! names. The client's key authenticates it here and never travels on.

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};
use tracing::Instrument;

use super::mcp_upstream::{Answer, Failure, SESSION, VERSION};
use super::{Body, Gateway, Peer, Response, json_response};
use crate::domain::{ApiKey, Settlement, UsageRecord};
use crate::error::{AuthError, GatewayError, RequestError};
use crate::mcp::McpServer;
use crate::mcp::jsonrpc::{self, Message};
use crate::mcp::session::{NONCE, Session, Upstream};
use crate::ports::{McpServerStore, Ports};

/// The handshake-era versions served; the last is offered to a client
/// asking for another.
const VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// Most pages of one server's tool list read.
const MAX_PAGES: usize = 16;

/// The body of an HTTP-level refusal on an MCP route (no request id known).
pub(super) fn http_error_body(status: StatusCode, message: &str) -> Value {
    let code = match status.as_u16() {
        400 | 405 | 413 | 415 => jsonrpc::INVALID_REQUEST,
        500.. => jsonrpc::INTERNAL_ERROR,
        _ => jsonrpc::REFUSED,
    };
    jsonrpc::error(&Value::Null, code, message)
}

/// A JSON-RPC answer with an HTTP status.
fn rpc<P: Ports>(status: StatusCode, body: &Value) -> Response<P> {
    json_response(status, body)
}

fn accepted<P: Ports>() -> Response<P> {
    let mut resp = http::Response::new(Body::Full(Bytes::new()));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp
}

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

/// Whether `key` may use `server` at all (`tool`: `None`), or its tool
/// exposed as `tool`: an empty allowlist allows everything; an entry names
/// a whole server or one `{server}_{tool}`.
fn allows(allowed: &[String], server: &str, tool: Option<&str>) -> bool {
    let of_server = |entry: &str| {
        entry
            .strip_prefix(server)
            .is_some_and(|rest| rest.starts_with('_'))
    };
    allowed.is_empty()
        || allowed.iter().any(|entry| {
            entry == server
                || match tool {
                    Some(t) => entry == t,
                    None => of_server(entry),
                }
        })
}

/// The answer to a forwarded request: JSON, or the notifications that
/// came before it and the response as one event stream when the client
/// takes one.
fn relay<P: Ports>(answer: Answer, id: &Value, sse: bool) -> Response<P> {
    let response = match answer.response {
        // Under the client's own id again.
        Some(Value::Object(mut r)) => {
            r.insert("id".into(), id.clone());
            Value::Object(r)
        }
        _ => jsonrpc::error(
            id,
            jsonrpc::INTERNAL_ERROR,
            "The MCP server sent no response.",
        ),
    };
    if !sse || answer.notifications.is_empty() {
        return rpc(StatusCode::OK, &response);
    }
    let mut text = String::new();
    for message in answer.notifications.iter().chain([&response]) {
        text.push_str("event: message\ndata: ");
        text.push_str(&message.to_string());
        text.push_str("\n\n");
    }
    let mut resp = http::Response::new(Body::Full(Bytes::from(text)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp
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
        self.ports().adopt_trace(&span, req.headers());
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
        let version = req.headers().get(VERSION);
        if version.is_some_and(|v| !VERSIONS.iter().any(|s| v.as_bytes() == s.as_bytes())) {
            return Err(RequestError::invalid("Unsupported MCP-Protocol-Version.", None).into());
        }
        if req.method() == Method::DELETE {
            let session = self.mcp_session(&req, &key, only.as_deref())?;
            self.end_upstreams(&session).await;
            return Ok(rpc(StatusCode::OK, &json!({})));
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
            Message::Notification { .. } | Message::Response => return Ok(accepted()),
        };
        span.record("mcp.method.name", method.as_str());
        let tool = params.get("name").and_then(Value::as_str);
        let name = match (method.as_str(), tool) {
            ("tools/call", Some(tool)) => {
                span.record("gen_ai.tool.name", tool);
                format!("{method} {tool}")
            }
            _ => method.clone(),
        };
        self.ports().name_span(span, name);
        if method == "initialize" {
            return self.mcp_initialize(&key, only, &id, &params).await;
        }
        let session = self.mcp_session(&req, &key, only.as_deref())?;
        let sse = req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"));
        match method.as_str() {
            "ping" => Ok(rpc(StatusCode::OK, &jsonrpc::result(&id, json!({})))),
            "tools/list" if params.contains_key("cursor") => Ok(rpc(
                StatusCode::OK,
                &jsonrpc::error(&id, jsonrpc::INVALID_PARAMS, "Unknown cursor."),
            )),
            "tools/list" => self.mcp_list_tools(&key, &session, &id).await,
            "tools/call" => {
                let call = Call {
                    key: &key,
                    session: &session,
                    request_id,
                    sse,
                };
                self.mcp_call_tool(call, id, params).await
            }
            _ => Ok(rpc(
                StatusCode::OK,
                &jsonrpc::error(
                    &id,
                    jsonrpc::METHOD_NOT_FOUND,
                    &format!("Method '{method}' is not served by this gateway."),
                ),
            )),
        }
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
    async fn mcp_servers(
        &self,
        key: &ApiKey,
        only: Option<&str>,
    ) -> Result<Vec<McpServer>, GatewayError> {
        let servers = self.ports().store().list_mcp_servers().await?;
        let usable: Vec<McpServer> = servers
            .into_iter()
            .filter(|s| s.enabled && only.is_none_or(|o| o == s.name))
            .filter(|s| allows(&key.allowed_tools, &s.name, None))
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
            .filter(|v| VERSIONS.contains(v))
            .unwrap_or(VERSIONS[VERSIONS.len() - 1]);
        let servers = self.mcp_servers(key, only.as_deref()).await?;
        let opened = join_all(servers.iter().map(|s| self.open_upstream(s, version))).await;
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
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "modelgate", "version": env!("CARGO_PKG_VERSION")},
        });
        let mut resp = rpc(StatusCode::OK, &jsonrpc::result(id, result));
        if let Ok(v) = HeaderValue::try_from(token) {
            resp.headers_mut().insert(SESSION, v);
        }
        Ok(resp)
    }

    /// Open a session with `server` (`initialize`, then `initialized`);
    /// `None` if it would not, so its tools are simply absent.
    async fn open_upstream(&self, server: &McpServer, version: &str) -> Option<Upstream> {
        let init = json!({
            "jsonrpc": "2.0", "id": self.upstream_id(), "method": "initialize",
            "params": {
                "protocolVersion": version,
                // Nothing a server could ask the client is relayed yet
                // (sampling, elicitation, roots): none is offered.
                "capabilities": {},
                "clientInfo": {"name": "modelgate", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let answer = match self
            .mcp_exchange(server, Method::POST, None, Some(&init))
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(server = server.name, "MCP initialize failed: {e:?}");
                return None;
            }
        };
        let agreed = answer.response.as_ref().and_then(|r| {
            r.pointer("/result/protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let Some(agreed) = agreed else {
            tracing::warn!(server = server.name, "MCP initialize answered no version");
            return None;
        };
        let upstream = Upstream {
            session: answer.session,
            version: agreed,
        };
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        if let Err(e) = self
            .mcp_exchange(server, Method::POST, Some(&upstream), Some(&done))
            .await
        {
            tracing::warn!(server = server.name, "MCP initialized failed: {e:?}");
            return None;
        }
        Some(upstream)
    }

    /// End every upstream session of `session` (best effort).
    async fn end_upstreams(&self, session: &Session) {
        let Ok(servers) = self.ports().store().list_mcp_servers().await else {
            return;
        };
        let ends = servers.iter().filter_map(|s| {
            let u = session.upstreams.get(&s.id)?;
            u.session
                .is_some()
                .then(|| self.mcp_exchange(s, Method::DELETE, Some(u), None))
        });
        join_all(ends).await;
    }

    /// The session's servers that still exist, are enabled and the key may
    /// still use (its allowlist is read afresh), with their side of the
    /// session.
    async fn session_servers(
        &self,
        key: &ApiKey,
        session: &Session,
    ) -> Result<Vec<(McpServer, Upstream)>, GatewayError> {
        let servers = self.ports().store().list_mcp_servers().await?;
        Ok(servers
            .into_iter()
            .filter(|s| s.enabled && allows(&key.allowed_tools, &s.name, None))
            .filter_map(|s| {
                let u = session.upstreams.get(&s.id)?.clone();
                Some((s, u))
            })
            .collect())
    }

    async fn mcp_list_tools(
        &self,
        key: &ApiKey,
        session: &Session,
        id: &Value,
    ) -> Result<Response<P>, GatewayError> {
        let servers = self.session_servers(key, session).await?;
        let lists = join_all(servers.iter().map(|(s, u)| self.server_tools(s, u))).await;
        let mut tools = Vec::new();
        for ((server, _), list) in servers.iter().zip(lists) {
            match list {
                Ok(list) => tools.extend(list.into_iter().filter(|t| {
                    let name = t.get("name").and_then(Value::as_str);
                    allows(&key.allowed_tools, &server.name, name)
                })),
                Err(Failure::SessionEnded) => return Ok(session_ended(id, &server.name)),
                Err(e) => tracing::warn!(server = server.name, "MCP tools/list failed: {e:?}"),
            }
        }
        Ok(rpc(
            StatusCode::OK,
            &jsonrpc::result(id, json!({"tools": tools})),
        ))
    }

    /// A fresh id for a request to a server: never one the client chose,
    /// so ids are not reused within a server's session however many
    /// clients' requests share it, and never guessable.
    fn upstream_id(&self) -> Value {
        Value::String(self.new_id("mg-"))
    }

    /// One server's tools, every page, named as clients see them.
    async fn server_tools(
        &self,
        server: &McpServer,
        upstream: &Upstream,
    ) -> Result<Vec<Value>, Failure> {
        let mut tools = Vec::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor
                .take()
                .map_or_else(|| json!({}), |c| json!({"cursor": c}));
            let req = json!({"jsonrpc": "2.0", "id": self.upstream_id(), "method": "tools/list", "params": params});
            let answer = self
                .mcp_exchange(server, Method::POST, Some(upstream), Some(&req))
                .await?;
            let result = answer.response.as_ref().and_then(|r| r.get("result"));
            let Some(result) = result else {
                return Err(Failure::Refused(answer.status));
            };
            for tool in result
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let original = tool.get("name").and_then(Value::as_str).unwrap_or_default();
                match exposed_name(&server.name, original) {
                    Some(name) => {
                        let mut tool = tool.clone();
                        tool["name"] = Value::String(name);
                        tools.push(tool);
                    }
                    None => tracing::warn!(
                        server = server.name,
                        tool = original,
                        "MCP tool not listed: its name is not a valid function name as {{server}}_{{tool}}"
                    ),
                }
            }
            match result.get("nextCursor") {
                Some(c) if !c.is_null() => cursor = Some(c.clone()),
                _ => break,
            }
        }
        Ok(tools)
    }

    async fn mcp_call_tool(
        &self,
        call: Call<'_>,
        id: Value,
        mut params: Map<String, Value>,
    ) -> Result<Response<P>, GatewayError> {
        let key = call.key;
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let servers = self.session_servers(key, call.session).await?;
        // A tool the key may not use is not one it can tell from a tool
        // that does not exist.
        let target = name.split_once('_').and_then(|(server, tool)| {
            let (s, u) = servers.iter().find(|(s, _)| s.name == server)?;
            allows(&key.allowed_tools, server, Some(&name)).then_some((s, u, tool))
        });
        let Some((server, upstream, tool)) = target else {
            let message = format!("Unknown tool: {name}");
            return Ok(rpc(
                StatusCode::OK,
                &jsonrpc::error(&id, jsonrpc::INVALID_PARAMS, &message),
            ));
        };
        if let Some(refusal) = self.mcp_rate(key, server, &id).await? {
            return Ok(refusal);
        }
        params.insert("name".into(), Value::String(tool.to_owned()));
        let req = json!({"jsonrpc": "2.0", "id": self.upstream_id(), "method": "tools/call", "params": params});
        let started = self.now_ms();
        let answer = self
            .mcp_exchange(server, Method::POST, Some(upstream), Some(&req))
            .await;
        self.record_tool_call(&call, server, &name, outcome(&answer), started)
            .await;
        match answer {
            Ok(answer) => Ok(relay(answer, &id, call.sse)),
            Err(Failure::SessionEnded) => Ok(session_ended(&id, &server.name)),
            Err(e) => Ok(rpc(
                StatusCode::OK,
                &jsonrpc::error(&id, jsonrpc::INTERNAL_ERROR, &e.describe(&server.name)),
            )),
        }
    }

    /// The key's calls a minute to `server`, if it has a limit: a refusal
    /// is a JSON-RPC error naming the limit and when to try again.
    async fn mcp_rate(
        &self,
        key: &ApiKey,
        server: &McpServer,
        id: &Value,
    ) -> Result<Option<Response<P>>, GatewayError> {
        let Some(rpm) = server.rpm else {
            return Ok(None);
        };
        let subject = format!("mcp:{}/{}", key.id, server.id);
        let d = self.step(&subject, rpm, 1).await?;
        if d.allowed {
            return Ok(None);
        }
        crate::observe::mcp_tool_call(&server.name, "", "rate_limited", 0);
        let message = format!(
            "Rate limit: {rpm} tool calls a minute to MCP server '{}'. Try again in {} ms.",
            server.name, d.retry_after_ms
        );
        let mut body = jsonrpc::error(id, jsonrpc::REFUSED, &message);
        body["error"]["data"] = json!({"retry_after_ms": d.retry_after_ms});
        Ok(Some(rpc(StatusCode::OK, &body)))
    }

    /// One usage record per tool call routed to a server (nothing charged:
    /// tool calls carry no tokens), its metrics and its log line.
    async fn record_tool_call(
        &self,
        call: &Call<'_>,
        server: &McpServer,
        tool: &str,
        outcome: &'static str,
        started: i64,
    ) {
        let now = self.now_ms();
        // Only a tool that answered is known to exist: a client chooses
        // the names it calls, and servers answer an unknown one in more
        // than one way, so no other name becomes a label.
        let known = if outcome == "ok" { tool } else { "" };
        crate::observe::mcp_tool_call(&server.name, known, outcome, now - started);
        let usage = UsageRecord {
            request_id: call.request_id.to_owned(),
            key_id: call.key.id.clone(),
            model: tool.to_owned(),
            backend: "mcp".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cost_nanos: None,
            status: 200,
            usage_reported: false,
            stream: call.sse,
            endpoint: Some("mcp".into()),
            deployment: Some(server.name.clone()),
            error: (outcome != "ok").then(|| outcome.to_owned()),
            latency_ms: now - started,
            created_at: now,
        };
        // Nothing is charged, so no window is named.
        let settlement = Settlement {
            key_id: call.key.id.clone(),
            reserved: 0,
            reserved_money: 0,
            quota_window: 0,
            budget_window: 0,
            usage,
        };
        self.settle(settlement).await;
    }
}

/// Who makes a tool call, in which session, and how it takes answers.
struct Call<'a> {
    key: &'a ApiKey,
    session: &'a Session,
    request_id: &'a str,
    sse: bool,
}

/// How a tool call ended, as records and metrics name it.
fn outcome(answer: &Result<Answer, Failure>) -> &'static str {
    match answer {
        Ok(a) => match a.response.as_ref() {
            Some(r) if r.get("error").is_some() => "error",
            Some(r) if r.pointer("/result/isError") == Some(&Value::Bool(true)) => "tool_error",
            Some(_) => "ok",
            None => "no_response",
        },
        Err(Failure::Timeout) => "timeout",
        Err(Failure::Unreachable) => "unreachable",
        Err(Failure::SessionEnded) => "session_ended",
        Err(Failure::Refused(_)) => "refused",
        Err(Failure::Misconfigured) => "misconfigured",
    }
}

/// An upstream ended its session: 404, so the client opens a new one.
fn session_ended<P: Ports>(id: &Value, server: &str) -> Response<P> {
    let message = Failure::SessionEnded.describe(server) + " Initialize again.";
    rpc(
        StatusCode::NOT_FOUND,
        &jsonrpc::error(id, jsonrpc::REFUSED, &message),
    )
}

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

    #[test]
    fn an_allowlist_names_whole_servers_or_single_tools() {
        assert!(allows(&[], "github", None) && allows(&[], "github", Some("github_x")));
        let key = ["docs".to_owned(), "github_create_issue".to_owned()];
        assert!(allows(&key, "docs", None) && allows(&key, "docs", Some("docs_search")));
        assert!(allows(&key, "github", None), "one of its tools is allowed");
        assert!(allows(&key, "github", Some("github_create_issue")));
        assert!(!allows(&key, "github", Some("github_delete_repo")));
        assert!(
            !allows(&key, "git", None),
            "a prefix of a name is not the name"
        );
        assert!(!allows(&key, "doc", Some("doc_s")));
        assert!(!allows(&key, "other", None));
    }

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
