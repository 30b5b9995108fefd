//! A tool call answered as an event stream, relayed as it comes: the
//! server's progress and log messages reach the client while the tool
//! runs, its response ends the stream under the client's own id, and the
//! call is recorded once however the stream ends (the client going away
//! drops the server's request too, which cancels it).

use std::future::Future;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use super::Gateway;
use super::mcp_record::{ToolCall, response_outcome};
use super::mcp_upstream::Failure;
use crate::codec::SseDecoder;
use crate::mcp::session::Upstream;
use crate::mcp::state::Binding;
use crate::mcp::{McpServer, jsonrpc, links, modern, relay};
use crate::ports::{ByteStream, HttpClient, MaybeSend, Ports};

/// Largest stream relayed from one call.
const MAX_STREAM: usize = 16 * 1024 * 1024;

/// Where a streamed call came from and goes to.
pub(super) struct Route {
    pub(super) server: McpServer,
    pub(super) upstream: Upstream,
    /// The server's session was opened for this call: end it after.
    pub(super) once: bool,
    /// The id the client asked under, and the one the server was asked.
    pub(super) client_id: Value,
    pub(super) upstream_id: Value,
    /// The client speaks the stateless era.
    pub(super) modern: bool,
    /// The client names resources with their server (`/mcp`, not
    /// `/mcp/{server}`): links in the result are renamed.
    pub(super) prefixed: bool,
    /// The client has a session of the handshake era, which the server's
    /// requests are relayed to (and its answers come back through).
    pub(super) relay: bool,
    /// What a `requestState` in the answer is sealed for.
    pub(super) state: Binding,
}

/// The client side of a streamed tool call.
pub(crate) struct McpStream<P: Ports> {
    gateway: Gateway<P>,
    body: Option<<P::Http as HttpClient>::Body>,
    decoder: SseDecoder,
    route: Route,
    deadline: i64,
    read: usize,
    done: bool,
    /// A notification went to the client.
    notified: bool,
    /// The message that ended the stream (the response, or an error).
    last: Option<Value>,
    /// Bytes read ahead, for the client first.
    pending: Option<Bytes>,
    outcome: Option<&'static str>,
    record: Option<ToolCall>,
}

impl<P: Ports> McpStream<P> {
    pub(super) fn new(
        gateway: Gateway<P>,
        body: <P::Http as HttpClient>::Body,
        route: Route,
        deadline: i64,
        record: ToolCall,
    ) -> Self {
        Self {
            gateway,
            body: Some(body),
            decoder: SseDecoder::new(),
            route,
            deadline,
            read: 0,
            done: false,
            notified: false,
            last: None,
            pending: None,
            outcome: None,
            record: Some(record),
        }
    }

    /// Read up to the first notification or the end. The answer, if the
    /// server sent nothing before it: then the client gets it whole, as
    /// the server would have; else the stream, from what was read.
    pub(super) async fn open(&mut self) -> Option<Value> {
        let first = self.next_chunk().await;
        if self.done && !self.notified {
            return self.last.clone();
        }
        self.pending = first;
        None
    }

    /// The next events for the client, `None` once the response was sent.
    pub(super) async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(read) = self.pending.take() {
            return Some(read);
        }
        let mut out = Vec::new();
        while out.is_empty() && !self.done {
            while let Ok(Some(event)) = self.decoder.next_event() {
                self.event(&event.data, &mut out).await;
                if self.done {
                    break;
                }
            }
            if self.done || !out.is_empty() {
                break;
            }
            let Some(body) = self.body.as_mut() else {
                break;
            };
            match self.gateway.until(self.deadline, body.next_chunk()).await {
                Some(Some(Ok(chunk))) => {
                    self.read += chunk.len();
                    if self.read > MAX_STREAM {
                        let why = Failure::Refused(413).describe(&self.route.server.name);
                        self.fail("refused", why, &mut out);
                    }
                    self.decoder.push(&chunk);
                }
                Some(None) => {
                    let name = &self.route.server.name;
                    let why = format!("MCP server '{name}' ended the call without an answer.");
                    self.fail("no_response", why, &mut out);
                }
                Some(Some(Err(_))) => {
                    let why = Failure::Unreachable.describe(&self.route.server.name);
                    self.fail("unreachable", why, &mut out);
                }
                None => {
                    let why = Failure::Timeout.describe(&self.route.server.name);
                    self.fail("timeout", why, &mut out);
                }
            }
        }
        if self.done {
            // Nothing more will be relayed: let the server's answer go.
            self.body = None;
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// One event from the server: a notification goes on, a request to
    /// the client goes on to a client with a session (else it is refused),
    /// the response ends it.
    async fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        let Ok(mut message) = serde_json::from_str::<Value>(data) else {
            // The priming event (an id and no data) and comments.
            return;
        };
        match (message.get("method").is_some(), message.get("id")) {
            (true, Some(id)) if self.route.relay => {
                message["id"] = relay::relayed_id(&self.route.server.name, id);
                self.notified = true;
                write(&message, out);
            }
            (true, Some(id)) => {
                let from = (&self.route.server, Some(&self.route.upstream));
                self.gateway.refuse_server_request(from, id).await;
            }
            (true, None) => {
                self.notified = true;
                write(&message, out);
            }
            (false, Some(id)) if *id == self.route.upstream_id => {
                message["id"] = self.route.client_id.clone();
                if let Some(result) = message.get_mut("result") {
                    if self.route.prefixed {
                        links::rename(result, &self.route.server.name);
                    }
                    if self.route.modern {
                        modern::complete(result);
                    }
                    self.gateway.seal_request_state(result, &self.route.state);
                }
                self.outcome = Some(response_outcome(&message));
                self.done = true;
                write(&message, out);
                self.last = Some(message);
            }
            // A response to something else: not the client's.
            (false, _) => {}
        }
    }

    /// End the stream with an error answer to the client's request.
    fn fail(&mut self, outcome: &'static str, why: String, out: &mut Vec<u8>) {
        let answer = jsonrpc::error(&self.route.client_id, jsonrpc::INTERNAL_ERROR, &why);
        write(&answer, out);
        self.last = Some(answer);
        self.outcome = Some(outcome);
        self.done = true;
    }

    /// The call's record (and the end of a session opened for it), the
    /// first time this is called; a stream that did not end counts as the
    /// client gone.
    pub(super) fn take_settlement(
        &mut self,
    ) -> Option<impl Future<Output = ()> + MaybeSend + 'static> {
        let record = self.record.take()?;
        self.body = None;
        let gateway = self.gateway.clone();
        let route = (self.route.server.clone(), self.route.upstream.clone());
        // Dropping the request cancels it for a stateless server; one with
        // a session is told.
        let cancel = (self.outcome.is_none() && route.1.session.is_some()).then(|| {
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {
                "requestId": self.route.upstream_id, "reason": "The client went away."}})
        });
        let outcome = self.outcome.unwrap_or("client_disconnected");
        let once = self.route.once;
        Some(async move {
            gateway.record_tool_call(record, outcome).await;
            if let Some(cancel) = cancel {
                let (server, upstream) = (&route.0, Some(&route.1));
                let _ = gateway
                    .mcp_exchange(server, Method::POST, upstream, Some(&cancel))
                    .await;
            }
            if once {
                gateway.end_sessions(&[route]).await;
            }
        })
    }
}

impl<P: Ports> Drop for McpStream<P> {
    fn drop(&mut self) {
        if let Some(settle) = self.take_settlement() {
            self.gateway.ports().spawn(settle);
        }
    }
}

/// One message as an SSE event.
pub(super) fn write(message: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(message.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
