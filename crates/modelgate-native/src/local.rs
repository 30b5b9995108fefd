//! Local MCP servers (stdio): the programs the operator allows
//! (`MG_MCP_COMMANDS`), each server's child started on first use, and
//! the Streamable HTTP face the core speaks to them through, as a server
//! of the handshake era would answer: `initialize` is answered from the
//! child's one handshake with a session of the gateway's own, requests
//! come back as event streams (progress, then the response), and a
//! request or session given up on is cancelled in the child.

mod child;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use modelgate_core::ports::{LocalCommand, TransportError, TransportErrorKind};
use serde_json::{Value, json};

use child::{Child, Messages};

/// A child waiting on nothing for this long is stopped (its server may be
/// gone); the next request starts it again.
const IDLE: Duration = Duration::from_secs(600);

/// A server's child, started once at a time.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Child>>>>;

/// The local MCP servers of this process.
pub struct LocalServers {
    programs: BTreeSet<String>,
    slots: std::sync::Mutex<HashMap<String, Slot>>,
    sessions: AtomicU64,
}

impl std::fmt::Debug for LocalServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServers")
            .field("programs", &self.programs)
            .finish_non_exhaustive()
    }
}

/// The body of a local server's answer.
pub struct LocalBody(Body);

/// One piece, or a request's messages as server-sent events.
enum Body {
    /// Whole (JSON, or nothing).
    Once(Option<Bytes>),
    /// A request's messages as they come.
    Events(Messages),
}

impl LocalBody {
    /// The next piece, `None` at the end.
    pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
        match &mut self.0 {
            Body::Once(piece) => piece.take(),
            Body::Events(messages) => {
                let m = messages.next().await?;
                Some(Bytes::from(format!("event: message\ndata: {m}\n\n")))
            }
        }
    }
}

impl std::fmt::Debug for LocalBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalBody")
    }
}

fn answer(status: StatusCode, body: Option<Value>) -> http::Response<LocalBody> {
    let body = body.map(|b| Bytes::from(b.to_string()));
    let mut resp = http::Response::new(LocalBody(Body::Once(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

impl LocalServers {
    /// Servers that may run `programs` (as their commands name them).
    pub fn new(programs: BTreeSet<String>) -> Self {
        Self {
            programs,
            slots: std::sync::Mutex::default(),
            sessions: AtomicU64::new(1),
        }
    }

    /// Whether `program` is one the operator allows.
    pub fn may_run(&self, program: &str) -> bool {
        self.programs.contains(program)
    }

    /// Answer `req` as `command`'s server (started if it is not running).
    pub async fn send(
        &self,
        command: LocalCommand,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<LocalBody>, TransportError> {
        // Checked again: the operator's list may have shrunk since.
        if !command.argv.first().is_some_and(|p| self.may_run(p)) {
            return Err(TransportError {
                kind: TransportErrorKind::Connect,
                detail: "program not in MG_MCP_COMMANDS".into(),
            });
        }
        let child = self.child(&command).await?;
        Ok(self.exchange(&child, req))
    }

    /// `command`'s running child, started now if there is none (or it
    /// exited, or its command changed). Children idle elsewhere stop.
    async fn child(&self, command: &LocalCommand) -> Result<Arc<Child>, TransportError> {
        let (slot, others) = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let slot = Arc::clone(slots.entry(command.server.clone()).or_default());
            let others: Vec<Slot> = slots
                .iter()
                .filter(|(server, _)| **server != command.server)
                .map(|(_, s)| Arc::clone(s))
                .collect();
            (slot, others)
        };
        for other in others {
            if let Ok(mut running) = other.try_lock()
                && running.as_ref().is_some_and(|c| c.idle_for(IDLE))
            {
                *running = None;
            }
        }
        let mut running = slot.lock().await;
        let wanted = child::fingerprint(command);
        if let Some(c) = running.as_ref()
            && c.alive()
            && c.fingerprint == wanted
        {
            return Ok(Arc::clone(c));
        }
        // The one it replaces (if any) is killed as it is dropped.
        *running = None;
        let started = Arc::new(Child::start(command).await?);
        *running = Some(Arc::clone(&started));
        Ok(started)
    }

    /// What the child answers `req`.
    fn exchange(&self, child: &Child, req: http::Request<Bytes>) -> http::Response<LocalBody> {
        let session = req
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        match *req.method() {
            Method::POST => {}
            Method::DELETE => {
                child.end_session(&session);
                return answer(StatusCode::OK, None);
            }
            _ => return answer(StatusCode::METHOD_NOT_ALLOWED, None),
        }
        let Ok(message) = serde_json::from_slice::<Value>(req.body()) else {
            let error = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}});
            return answer(StatusCode::BAD_REQUEST, Some(error));
        };
        let method = message.get("method").and_then(Value::as_str);
        match (method, message.get("id")) {
            (Some("initialize"), Some(id)) => {
                let n = self.sessions.fetch_add(1, Ordering::Relaxed);
                let mut resp = answer(
                    StatusCode::OK,
                    Some(json!({"jsonrpc": "2.0", "id": id, "result": child.init})),
                );
                if let Ok(v) = http::HeaderValue::try_from(format!("local-{n}")) {
                    resp.headers_mut().insert("mcp-session-id", v);
                }
                resp
            }
            (Some(_), Some(_)) => match child.request(&session, message) {
                Ok(messages) => {
                    let mut resp = answer(StatusCode::OK, None);
                    *resp.body_mut() = LocalBody(Body::Events(messages));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/event-stream"),
                    );
                    resp
                }
                Err(_) => answer(StatusCode::BAD_GATEWAY, None),
            },
            // The child had its own; the gateway's sessions share it.
            (Some("notifications/initialized"), None) => answer(StatusCode::ACCEPTED, None),
            (Some(_), None) => match child.notify(&session, message) {
                Ok(()) => answer(StatusCode::ACCEPTED, None),
                Err(_) => answer(StatusCode::BAD_GATEWAY, None),
            },
            // An answer to a request of the child's: those are answered
            // here already.
            (None, Some(_)) => answer(StatusCode::ACCEPTED, None),
            (None, None) => answer(StatusCode::BAD_REQUEST, None),
        }
    }
}
