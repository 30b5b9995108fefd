//! One exchange with an upstream MCP server over Streamable HTTP: the
//! request with the server's own headers (its credentials, never the
//! client's key) and its session, under the server's deadline; the answer
//! read whether it comes as one JSON object or as an SSE stream (the
//! notifications before the response are kept, in order).

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::Value;

use super::Gateway;
use crate::codec::SseDecoder;
use crate::error::GatewayError;
use crate::mcp::server::secret_reference;
use crate::mcp::session::Upstream;
use crate::mcp::{McpServer, jsonrpc, modern};
use crate::ports::{ByteStream, HttpClient, LocalCommand, Ports};

/// The body of an upstream's answer.
type UpstreamBody<P> = <<P as Ports>::Http as HttpClient>::Body;
use crate::secret::Secret;

/// Largest answer read from an MCP server.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// The session header, both ways.
pub(super) const SESSION: &str = "mcp-session-id";
/// The negotiated version, on every request after `initialize`.
pub(super) const VERSION: &str = "mcp-protocol-version";

/// What a server answered.
#[derive(Debug, Default)]
pub(super) struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The session id it gave (`initialize`).
    pub session: Option<String>,
    /// The messages before the response (progress, log), in order.
    pub notifications: Vec<Value>,
    /// The response to the request, if one came.
    pub response: Option<Value>,
}

/// Why an exchange failed, in words a client may see (never the URL).
#[derive(Debug)]
pub(super) enum Failure {
    /// No answer within the server's deadline.
    Timeout,
    /// The server could not be reached, or broke off.
    Unreachable,
    /// The server's own session ended (404): the client must start again.
    SessionEnded,
    /// It answered with an error status or an unreadable body.
    Refused(u16),
    /// A secret its headers name is not set.
    Misconfigured,
}

impl Failure {
    /// For the JSON-RPC error message.
    pub(super) fn describe(&self, server: &str) -> String {
        match self {
            Self::Timeout => format!("MCP server '{server}' did not answer in time."),
            Self::Unreachable => format!("MCP server '{server}' could not be reached."),
            Self::SessionEnded => format!("MCP server '{server}' ended its session."),
            Self::Refused(s) => format!("MCP server '{server}' answered with status {s}."),
            Self::Misconfigured => format!("MCP server '{server}' is misconfigured."),
        }
    }
}

/// A request sent: the head of its answer, and the deadline for the rest.
pub(super) struct Sent<P: Ports> {
    pub(super) resp: http::Response<UpstreamBody<P>>,
    pub(super) deadline: i64,
}

/// Whether an answer comes as an event stream.
pub(super) fn sent_events<B>(resp: &http::Response<B>) -> bool {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"))
}

impl<P: Ports> Gateway<P> {
    /// A server header's value, with a secret it names read now.
    fn header_value(&self, value: &Secret) -> Result<String, GatewayError> {
        let value = value.expose();
        let Some((scheme, name)) = secret_reference(value) else {
            return Ok(value.to_owned());
        };
        let secret = self.resolve_secret(name)?;
        Ok(if scheme.is_empty() {
            secret
        } else {
            format!("{scheme} {secret}")
        })
    }

    fn mcp_request(
        &self,
        server: &McpServer,
        method: Method,
        upstream: Option<&Upstream>,
        body: Option<&Value>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<http::Request<Bytes>, Failure> {
        // A local server's requests go to no address.
        let uri = if server.is_local() { "/" } else { &server.url };
        let mut req = http::Request::builder().method(method).uri(uri);
        for (name, value) in &server.headers {
            let value = self
                .header_value(value)
                .map_err(|_| Failure::Misconfigured)?;
            let name = HeaderName::try_from(name.as_str()).map_err(|_| Failure::Misconfigured)?;
            let value = HeaderValue::try_from(value).map_err(|_| Failure::Misconfigured)?;
            req = req.header(name, value);
        }
        req = req
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(u) = upstream {
            req = req.header(VERSION, &u.version);
            if let Some(s) = &u.session {
                req = req.header(SESSION, s);
            }
        }
        for (name, value) in extra {
            req = req.header(name, value);
        }
        let version = upstream.map_or(crate::mcp::versions::LATEST_HANDSHAKE, |u| {
            u.version.as_str()
        });
        let traceparent = self.ports().traceparent();
        let body = body.map(|b| modern::outgoing(b, version, traceparent.as_deref()));
        let mut bytes = Bytes::new();
        if let Some((body, headers)) = body {
            for (name, value) in headers {
                let value = HeaderValue::try_from(value).map_err(|_| Failure::Misconfigured)?;
                req = req.header(name, value);
            }
            bytes = Bytes::from(body.to_string());
        }
        req.body(bytes).map_err(|_| Failure::Misconfigured)
    }

    /// Send `req` over the network, or to the local server's child.
    async fn mcp_transport(
        &self,
        server: &McpServer,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<UpstreamBody<P>>, Failure> {
        if !server.is_local() {
            return self
                .send_upstream(req)
                .await
                .map_err(|_| Failure::Unreachable);
        }
        let env = server
            .env
            .iter()
            .map(|(name, value)| Ok((name.clone(), self.header_value(value)?)))
            .collect::<Result<Vec<_>, GatewayError>>()
            .map_err(|_| Failure::Misconfigured)?;
        let command = LocalCommand {
            server: server.id.clone(),
            argv: server.command.clone(),
            env,
            start_ms: server.timeout_ms,
        };
        self.ports()
            .http()
            .send_local(command, req)
            .await
            .map_err(|e| {
                tracing::warn!(server = server.name, "local MCP server: {}", e.detail);
                Failure::Unreachable
            })
    }

    /// Send `body` (a request or notification) to `server` in `upstream`'s
    /// session, and read its answer; `method` is DELETE to end a session.
    pub(super) async fn mcp_exchange(
        &self,
        server: &McpServer,
        method: Method,
        upstream: Option<&Upstream>,
        body: Option<&Value>,
    ) -> Result<Answer, Failure> {
        self.mcp_exchange_with(server, method, upstream, body, &[])
            .await
    }

    /// [`Self::mcp_exchange`] with `extra` headers (a modern client's
    /// `Mcp-Param-*`, which intermediaries must pass on).
    pub(super) async fn mcp_exchange_with(
        &self,
        server: &McpServer,
        method: Method,
        upstream: Option<&Upstream>,
        body: Option<&Value>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Answer, Failure> {
        let sent = self.mcp_send(server, method, upstream, body, extra).await?;
        let id = body.and_then(|b| b.get("id"));
        self.mcp_read(sent, (server, upstream), id).await
    }

    /// Send a request and take the head of the answer, within the
    /// server's deadline (which reading the rest keeps to).
    pub(super) async fn mcp_send(
        &self,
        server: &McpServer,
        method: Method,
        upstream: Option<&Upstream>,
        body: Option<&Value>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Sent<P>, Failure> {
        let req = self.mcp_request(server, method, upstream, body, extra)?;
        let deadline = self.now_ms() + i64::from(server.timeout_ms);
        let resp = match self.until(deadline, self.mcp_transport(server, req)).await {
            None => return Err(Failure::Timeout),
            Some(Err(f)) => return Err(f),
            Some(Ok(r)) => r,
        };
        if resp.status() == StatusCode::NOT_FOUND && upstream.is_some_and(|u| u.session.is_some()) {
            return Err(Failure::SessionEnded);
        }
        Ok(Sent { resp, deadline })
    }

    /// Read the rest of an answer: one JSON object, or the events up to
    /// the response to `id`.
    pub(super) async fn mcp_read(
        &self,
        sent: Sent<P>,
        from: (&McpServer, Option<&Upstream>),
        id: Option<&Value>,
    ) -> Result<Answer, Failure> {
        let Sent { resp, deadline } = sent;
        let status = resp.status();
        let session = resp
            .headers()
            .get(SESSION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let sse = sent_events(&resp);
        let mut answer = Answer {
            status: status.as_u16(),
            session,
            ..Answer::default()
        };
        if sse {
            self.read_events(from, resp.into_body(), deadline, id, &mut answer)
                .await?;
        } else {
            let bytes = self
                .read_limited(resp.into_body(), deadline, MAX_ANSWER)
                .await
                .map_err(|_| Failure::Timeout)?;
            answer.response = serde_json::from_slice(&bytes).ok();
        }
        if !status.is_success() && answer.response.is_none() {
            return Err(Failure::Refused(status.as_u16()));
        }
        Ok(answer)
    }

    /// Answer a server's request to the client with an error: the gateway
    /// offers servers no client capability (sampling, elicitation, roots).
    pub(super) async fn refuse_server_request(
        &self,
        (server, upstream): (&McpServer, Option<&Upstream>),
        id: &Value,
    ) {
        let refusal = jsonrpc::error(
            id,
            jsonrpc::METHOD_NOT_FOUND,
            "The gateway relays no requests from servers to clients.",
        );
        let Ok(req) = self.mcp_request(server, Method::POST, upstream, Some(&refusal), &[]) else {
            return;
        };
        let deadline = self.now_ms() + i64::from(server.timeout_ms);
        if self
            .until(deadline, self.mcp_transport(server, req))
            .await
            .is_none()
        {
            tracing::warn!(
                server = server.name,
                "MCP server took no refusal of its request"
            );
        }
    }

    /// Read SSE events until the response to `id` (or the end), keeping
    /// the notifications before it.
    async fn read_events(
        &self,
        from: (&McpServer, Option<&Upstream>),
        mut body: impl ByteStream,
        deadline: i64,
        id: Option<&Value>,
        answer: &mut Answer,
    ) -> Result<(), Failure> {
        let mut decoder = SseDecoder::new();
        let mut read = 0usize;
        loop {
            while let Ok(Some(event)) = decoder.next_event() {
                let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                    // The priming event (an id and no data) and comments.
                    continue;
                };
                let is_response =
                    message.get("method").is_none() && (id.is_none() || message.get("id") == id);
                if is_response {
                    answer.response = Some(message);
                    return Ok(());
                }
                match message.get("id") {
                    // A request to the client: none is relayed, so it is
                    // refused at once rather than left to time out.
                    Some(asked) if message.get("method").is_some() => {
                        self.refuse_server_request(from, asked).await;
                    }
                    _ => answer.notifications.push(message),
                }
            }
            match self.until(deadline, body.next_chunk()).await {
                None => return Err(Failure::Timeout),
                Some(None) => return Ok(()),
                Some(Some(Err(_))) => return Err(Failure::Unreachable),
                Some(Some(Ok(chunk))) => {
                    read += chunk.len();
                    if read > MAX_ANSWER {
                        return Err(Failure::Refused(413));
                    }
                    decoder.push(&chunk);
                }
            }
        }
    }
}
