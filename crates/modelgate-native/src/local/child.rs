//! One local MCP server: a child process speaking JSON-RPC over stdio, one
//! message a line, with the environment its server declares and nothing
//! else of the gateway's; killed when dropped. Its requests come from many
//! of the gateway's sessions at once, so each gets an id (and a progress
//! token) of the child's own, and answers, progress and cancellations are
//! routed back by them.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use modelgate_core::ports::{LocalCommand, TransportError, TransportErrorKind};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// Longest line read from a child (one message).
const MAX_LINE: usize = 16 * 1024 * 1024;
/// Longest line of a child's stderr kept for the log.
const MAX_LOG_LINE: usize = 1024;
/// Variables of the gateway's own environment a child gets: where to find
/// programs, and a home for their caches (`npx`, `uvx`).
const PASSED_ON: [&str; 2] = ["PATH", "HOME"];

fn failed(kind: TransportErrorKind, detail: impl Into<String>) -> TransportError {
    TransportError {
        kind,
        detail: detail.into(),
    }
}

/// A request of the gateway's waiting for its answer.
struct Pending {
    /// Where its messages go (progress, then the response).
    to: UnboundedSender<Value>,
    /// The id the gateway gave it.
    id: Value,
    /// The progress token the gateway gave it.
    token: Option<Value>,
    /// The gateway's session it belongs to.
    session: String,
}

#[derive(Default)]
struct Routes {
    /// Whether the child still reads and writes.
    alive: bool,
    /// By the child's id.
    pending: HashMap<u64, Pending>,
}

/// A started, initialized child.
pub(super) struct Child {
    /// Which command and environment it runs.
    pub(super) fingerprint: u64,
    /// Its answer to `initialize`, given to every session.
    pub(super) init: Value,
    routes: Arc<Mutex<Routes>>,
    to_child: UnboundedSender<Bytes>,
    next_id: AtomicU64,
    used: Mutex<Instant>,
    _process: tokio::process::Child,
}

/// The messages of one request, as they come; dropped before the answer,
/// the request is cancelled.
pub(super) struct Messages {
    rx: UnboundedReceiver<Value>,
    id: u64,
    routes: Weak<Mutex<Routes>>,
    to_child: UnboundedSender<Bytes>,
}

impl Messages {
    /// The next message; `None` after the response (or if the child died).
    pub(super) async fn next(&mut self) -> Option<Value> {
        self.rx.recv().await
    }
}

impl Drop for Messages {
    fn drop(&mut self) {
        let Some(routes) = self.routes.upgrade() else {
            return;
        };
        let unanswered = lock(&routes).pending.remove(&self.id).is_some();
        if unanswered {
            // Given up on (the gateway's deadline, its client gone): the
            // child need not finish it.
            let _ = send(&self.to_child, &cancelled(self.id));
        }
    }
}

fn lock(routes: &Mutex<Routes>) -> std::sync::MutexGuard<'_, Routes> {
    routes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn cancelled(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id}})
}

fn send(to_child: &UnboundedSender<Bytes>, message: &Value) -> Result<(), TransportError> {
    let mut line = message.to_string().into_bytes();
    line.push(b'\n');
    to_child
        .send(Bytes::from(line))
        .map_err(|_| failed(TransportErrorKind::Broken, "local MCP server exited"))
}

/// A hash of what a child runs: a changed command or environment starts
/// another.
pub(super) fn fingerprint(command: &LocalCommand) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    command.argv.hash(&mut h);
    command.env.hash(&mut h);
    h.finish()
}

impl Child {
    /// Start `command` and initialize it, within its start deadline.
    pub(super) async fn start(command: &LocalCommand) -> Result<Self, TransportError> {
        let deadline = Duration::from_millis(u64::from(command.start_ms));
        let started = tokio::time::timeout(deadline, Self::spawn(command)).await;
        started.unwrap_or_else(|_| {
            Err(failed(
                TransportErrorKind::Timeout,
                "local MCP server did not initialize in time",
            ))
        })
    }

    async fn spawn(command: &LocalCommand) -> Result<Self, TransportError> {
        let (program, args) = command
            .argv
            .split_first()
            .ok_or_else(|| failed(TransportErrorKind::Connect, "no command"))?;
        let mut process = tokio::process::Command::new(program);
        process
            .args(args)
            .env_clear()
            .envs(
                PASSED_ON
                    .iter()
                    .filter_map(|k| Some((k, std::env::var_os(k)?))),
            )
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut process = process.spawn().map_err(|e| {
            failed(
                TransportErrorKind::Connect,
                format!("local MCP server '{program}' did not start: {e}"),
            )
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            return Err(failed(TransportErrorKind::Connect, "no pipes to the child"));
        };
        let routes = Arc::new(Mutex::new(Routes {
            alive: true,
            ..Routes::default()
        }));
        let (to_child, from_gateway) = unbounded_channel();
        tokio::spawn(write(stdin, from_gateway));
        tokio::spawn(read(stdout, Arc::clone(&routes), to_child.clone()));
        tokio::spawn(log(stderr, command.server.clone()));
        let mut child = Self {
            fingerprint: fingerprint(command),
            init: Value::Null,
            routes,
            to_child,
            next_id: AtomicU64::new(1),
            used: Mutex::new(Instant::now()),
            _process: process,
        };
        child.init = child.initialize().await?;
        Ok(child)
    }

    /// The handshake, once for all the gateway's sessions.
    async fn initialize(&self) -> Result<Value, TransportError> {
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": modelgate_core::mcp::versions::LATEST_HANDSHAKE,
                "capabilities": {},
                "clientInfo": {"name": "modelgate", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let mut messages = self.request("", init)?;
        let mut result = None;
        while let Some(m) = messages.next().await {
            if m.get("method").is_none() {
                result = m.get("result").cloned();
            }
        }
        let result = result.ok_or_else(|| {
            failed(
                TransportErrorKind::Connect,
                "local MCP server refused to initialize",
            )
        })?;
        send(
            &self.to_child,
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )?;
        Ok(result)
    }

    /// Whether it still runs.
    pub(super) fn alive(&self) -> bool {
        lock(&self.routes).alive
    }

    /// Whether it has answered nothing for `idle` and waits on nothing.
    pub(super) fn idle_for(&self, idle: Duration) -> bool {
        let used = *self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        used.elapsed() > idle && lock(&self.routes).pending.is_empty()
    }

    /// Send the gateway's request `message` of `session`; its messages
    /// come through what this returns.
    pub(super) fn request(
        &self,
        session: &str,
        mut message: Value,
    ) -> Result<Messages, TransportError> {
        *self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        let own = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = std::mem::replace(&mut message["id"], own.into());
        let token = message
            .pointer_mut("/params/_meta/progressToken")
            .map(|t| std::mem::replace(t, own.into()));
        let (to, rx) = unbounded_channel();
        {
            let mut routes = lock(&self.routes);
            if !routes.alive {
                return Err(failed(
                    TransportErrorKind::Broken,
                    "local MCP server exited",
                ));
            }
            let session = session.to_owned();
            routes.pending.insert(
                own,
                Pending {
                    to,
                    id,
                    token,
                    session,
                },
            );
        }
        send(&self.to_child, &message)?;
        Ok(Messages {
            rx,
            id: own,
            routes: Arc::downgrade(&self.routes),
            to_child: self.to_child.clone(),
        })
    }

    /// Pass on the gateway's notification of `session`: a cancellation
    /// names the request by the child's id, and needs no answer any more.
    pub(super) fn notify(&self, session: &str, mut message: Value) -> Result<(), TransportError> {
        if message["method"] == "notifications/cancelled" {
            let asked = message.pointer("/params/requestId");
            let mut routes = lock(&self.routes);
            let own = routes
                .pending
                .iter()
                .find(|(_, p)| p.session == session && Some(&p.id) == asked)
                .map(|(own, _)| *own);
            // Not (or no longer) waiting: nothing to cancel.
            let Some(own) = own else { return Ok(()) };
            routes.pending.remove(&own);
            message["params"]["requestId"] = own.into();
        }
        send(&self.to_child, &message)
    }

    /// The gateway ended `session`: what it still waits on is cancelled.
    pub(super) fn end_session(&self, session: &str) {
        let ended: Vec<u64> = {
            let mut routes = lock(&self.routes);
            let ended: Vec<u64> = routes
                .pending
                .iter()
                .filter(|(_, p)| p.session == session)
                .map(|(own, _)| *own)
                .collect();
            for own in &ended {
                routes.pending.remove(own);
            }
            ended
        };
        for own in ended {
            let _ = send(&self.to_child, &cancelled(own));
        }
    }
}

async fn write(mut stdin: tokio::process::ChildStdin, mut lines: UnboundedReceiver<Bytes>) {
    while let Some(line) = lines.recv().await {
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Read the child's messages until it closes its stdout (or breaks the
/// protocol with an endless line), routing each.
async fn read(
    stdout: impl AsyncRead + Unpin,
    routes: Arc<Mutex<Routes>>,
    to_child: UnboundedSender<Bytes>,
) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
        match (&mut reader).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) if line.len() > MAX_LINE => break,
            Ok(_) => {}
        }
        // Not a message (a server's stray print): skipped.
        if let Ok(message) = serde_json::from_slice::<Value>(&line) {
            route(&routes, &to_child, message);
        }
    }
    let mut routes = lock(&routes);
    routes.alive = false;
    // Dropping the senders ends every request's messages unanswered.
    routes.pending.clear();
}

/// Where a message of the child's goes.
fn route(routes: &Mutex<Routes>, to_child: &UnboundedSender<Bytes>, mut message: Value) {
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match (method, message.get("id").cloned()) {
        // A request to its client: the gateway relays none, and answers
        // a ping itself.
        (Some(method), Some(id)) => {
            let answer = if method == "ping" {
                json!({"jsonrpc": "2.0", "id": id, "result": {}})
            } else {
                json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": -32601, "message": "The gateway relays no requests from servers to clients."
                }})
            };
            let _ = send(to_child, &answer);
        }
        // Progress belongs to the request whose token it names.
        (Some(_), None) => {
            let Some(own) = message
                .pointer("/params/progressToken")
                .and_then(Value::as_u64)
            else {
                return;
            };
            let routes = lock(routes);
            let Some(p) = routes.pending.get(&own) else {
                return;
            };
            if let Some(token) = &p.token {
                message["params"]["progressToken"] = token.clone();
                let _ = p.to.send(message);
            }
        }
        (None, Some(id)) => {
            let Some(p) = id
                .as_u64()
                .and_then(|own| lock(routes).pending.remove(&own))
            else {
                return;
            };
            message["id"] = p.id;
            let _ = p.to.send(message);
        }
        (None, None) => {}
    }
}

/// The child's stderr, for the operator's debug log (a long line in
/// pieces).
async fn log(stderr: tokio::process::ChildStderr, server: String) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_LOG_LINE).unwrap_or(u64::MAX);
    loop {
        line.clear();
        match (&mut reader).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&line);
        tracing::debug!(server, "local MCP server: {}", line.trim_end());
    }
}
