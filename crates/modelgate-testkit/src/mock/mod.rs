//! A mock upstream that speaks OpenAI-compatible HTTP (`/v1/...`: chat,
//! completions, embeddings and the Responses API), Ollama's native API
//! (`/api/...`: chat, generate, embed) and Anthropic's Messages API
//! (`/v1/messages`, in `messages.rs`), with fault injection.
//!
//! A chat or Responses request that offers function tools, and whose last
//! input is not a tool result, is answered with one call of the first tool
//! (arguments filled from its schema); otherwise with text.
//!
//! Behaviour is chosen per request by the upstream model name, so each test
//! configures its own gateway model and needs no shared state:
//! `mock?tokens=8&ttft_ms=0&itl_ms=0&fault=cut&after=3`.
//!
//! | option | meaning |
//! |---|---|
//! | `tokens=N` | completion tokens to generate (capped by max_tokens), default 8 |
//! | `ttft_ms=N` / `itl_ms=N` | delay before the first token / between tokens |
//! | `status=N` | answer N with an OpenAI error body (Ollama: `{"error":..}`) |
//! | `fault=html` | answer 500 with an HTML page |
//! | `fault=garbage` | answer 200 with a body that is not JSON / not SSE |
//! | `fault=hang` | never answer (headers never come) |
//! | `fault=hang_body` | send headers and `after` tokens, then hang |
//! | `fault=cut` | stream `after` tokens, then close without finishing |
//! | `fault=malformed` | stream `after` tokens, then a malformed event |
//! | `fault=error_event` | stream `after` tokens, then an in-band error event |
//! | `fault=foreign_json` | answer 200 with JSON that is no completion (a metadata service's credentials) |
//! | `redirect_port=N` | answer 307 to the same path on `localhost:N` (another host, to a client) |
//! | `fail_first=N` | the first N requests for this model name get a 503 (or `fail_status`) |
//! | `fail_status=N` | the status `fail_first` answers with |
//! | `retry_after=N` | error answers carry `Retry-After: N` |
//! | `no_usage=1` | never report usage |
//! | `cached=N` | report N of the prompt tokens as served from a cache (at most the prompt) |
//! | `cache_write=N` / `cache_write_1h=N` | Messages: report N prompt tokens written to the cache for 5 minutes / an hour |
//! | `no_tools=1` | answer in text even when tools are offered |
//! | `tool=NAME` | call the tool named NAME (if offered), with only its required arguments |
//! | `arg_K=V` | with `tool`: argument K is the string V |
//! | `report_tokens=N` | report N completion tokens, whatever was generated (a lying upstream; N may pass i64) |
//! | `stamp=1` | each OpenAI stream chunk carries `mock_sent_us`, its send time (µs since the Unix epoch) |
//! | `stateful=1` | Responses: a new id per answer, and a `previous_response_id` the mock made bills the earlier conversation's tokens again as input (as OpenAI does) |
//!
//! Embeddings (`embed.rs`) honour `status`, `fail_first`, `fault=hang`,
//! `fault=garbage` and `no_usage=1` (counts of 0, as older llama.cpp).
//!
//! `GET /_mock/stats` reports what was served; `GET /_mock/last` the last
//! request body, auth and `traceparent` headers seen. `GET /health` answers like
//! llama.cpp's: 200, or 503 "Loading model" while
//! [`MockUpstream::set_ready`] says it is not ready.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures_util::stream;
use serde_json::{Value, json};
use tokio::net::TcpListener;

mod embed;
pub use embed::vector;
mod messages;
mod plan;
mod responses;

use plan::Plan;

/// Counters of what the mock served.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    /// Generation requests received (including those answered with a fault).
    pub requests: u64,
    /// Prompt tokens counted.
    pub prompt_tokens: u64,
    /// Completion tokens sent to the gateway.
    pub completion_tokens: u64,
}

#[derive(Default)]
struct Shared {
    stats: Mutex<Stats>,
    fail_counts: Mutex<HashMap<String, u64>>,
    last: Mutex<Value>,
    loading: std::sync::atomic::AtomicBool,
    /// `stateful=1`: the tokens each Response's conversation billed so far.
    conversations: Mutex<HashMap<String, u64>>,
}

/// A running mock upstream. Dropping it stops the server.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockUpstream {
    /// Start on a free 127.0.0.1 port.
    pub async fn start() -> std::io::Result<Self> {
        Self::bind("127.0.0.1:0".parse().map_err(std::io::Error::other)?).await
    }

    /// Start on `addr`.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = router(Arc::clone(&shared));
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was served so far.
    pub fn stats(&self) -> Stats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The last generation request seen: `{"body", "authorization", "x-api-key", "traceparent",
    /// "anthropic-version", "anthropic-beta"}`.
    pub fn last_request(&self) -> Value {
        self.shared
            .last
            .lock()
            .map(|v| v.clone())
            .unwrap_or(Value::Null)
    }

    /// Make `GET /health` answer 200 (ready) or 503 (loading).
    pub fn set_ready(&self, ready: bool) {
        self.shared
            .loading
            .store(!ready, std::sync::atomic::Ordering::Relaxed);
    }

    /// Run until the task ends (for the binary).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/models", get(|| async { Json(json!({"object": "list", "data": [{"id": "mock", "object": "model", "created": 0, "owned_by": "mock"}, {"id": "mock-2", "object": "model", "created": 0, "owned_by": "mock"}]})) }))
        .route("/api/tags", get(|| async { Json(json!({"models": [{"name": "mock", "model": "mock"}, {"name": "mock-2", "model": "mock-2"}]})) }))
        .route("/v1/chat/completions", post(|s, h, b| generate(s, h, b, Proto::OpenAi, true)))
        .route("/v1/completions", post(|s, h, b| generate(s, h, b, Proto::OpenAi, false)))
        .route("/api/chat", post(|s, h, b| generate(s, h, b, Proto::Ollama, true)))
        .route("/api/generate", post(|s, h, b| generate(s, h, b, Proto::Ollama, false)))
        .route("/v1/responses", post(|s, h, b| generate(s, h, b, Proto::Responses, true)))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/tokenize", post(messages::tokenize))
        .route("/v1/embeddings", post(|s, b| embed::embed(s, b, Proto::OpenAi)))
        .route("/api/embed", post(|s, b| embed::embed(s, b, Proto::Ollama)))
        .route("/health", get(|State(s): State<Arc<Shared>>| async move {
            if s.loading.load(std::sync::atomic::Ordering::Relaxed) {
                let body = json!({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}});
                (StatusCode::SERVICE_UNAVAILABLE, Json(body))
            } else {
                (StatusCode::OK, Json(json!({"status": "ok"})))
            }
        }))
        .route("/_mock/stats", get(|State(s): State<Arc<Shared>>| async move {
            Json(s.stats.lock().map(|s| s.clone()).unwrap_or_default())
        }))
        .route("/_mock/last", get(|State(s): State<Arc<Shared>>| async move {
            Json(s.last.lock().map(|v| v.clone()).unwrap_or(Value::Null))
        }))
        .with_state(shared)
}

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    OpenAi,
    Ollama,
    /// OpenAI's Responses API.
    Responses,
}

/// Words of every text in `content` (a string or parts).
fn content_words(content: Option<&Value>) -> u64 {
    let words = |s: &str| s.split_whitespace().count() as u64;
    match content {
        Some(Value::String(s)) => words(s),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text")?.as_str())
            .map(words)
            .sum(),
        _ => 0,
    }
}

/// Prompt tokens: whitespace-separated words of every text in the prompt.
fn count_prompt(body: &Value, proto: Proto, chat: bool) -> u64 {
    let words = |s: &str| s.split_whitespace().count() as u64;
    if proto == Proto::Responses {
        return responses::count_input(body);
    }
    if chat {
        body.get("messages")
            .and_then(Value::as_array)
            .map_or(0, |ms| {
                ms.iter().map(|m| content_words(m.get("content"))).sum()
            })
    } else {
        match body.get("prompt") {
            Some(Value::String(s)) => words(s),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(words).sum(),
            _ => 0,
        }
    }
}

/// The tool call to answer with: the first function tool (or the one
/// `chosen`), called with arguments filled from its schema, unless the
/// model has had a tool result since its last turn (then it answers in
/// text).
fn tool_call(
    req: &Value,
    proto: Proto,
    chosen: Option<&(String, serde_json::Map<String, Value>)>,
) -> Option<(String, String)> {
    let name_of = |t: &Value| match proto {
        Proto::Responses => t.get("name").and_then(Value::as_str).map(str::to_owned),
        Proto::OpenAi | Proto::Ollama => t
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let tools = req.get("tools")?.as_array()?;
    let tool = match chosen {
        Some((name, _)) => tools.iter().find(|t| name_of(t).as_ref() == Some(name))?,
        None => tools.first()?,
    };
    let (name, params) = match proto {
        Proto::Responses => (tool.get("name")?, tool.get("parameters")),
        Proto::OpenAi | Proto::Ollama => (
            tool.pointer("/function/name")?,
            tool.pointer("/function/parameters"),
        ),
    };
    let answered = match proto {
        Proto::Responses => {
            req.get("input")?.as_array()?.last()?.get("type")
                == Some(&json!("function_call_output"))
        }
        Proto::OpenAi | Proto::Ollama => req
            .get("messages")?
            .as_array()?
            .iter()
            .rev()
            .map_while(|m| m.get("role").filter(|r| *r != "assistant"))
            .any(|r| r == "tool"),
    };
    if answered {
        return None;
    }
    let mut args = serde_json::Map::new();
    let required: Option<Vec<&str>> = chosen.map(|_| {
        params
            .and_then(|p| p.get("required"))
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    });
    if let Some(Value::Object(props)) = params.and_then(|p| p.get("properties")) {
        for (k, schema) in props {
            if required.as_ref().is_some_and(|r| !r.contains(&k.as_str())) {
                continue;
            }
            let v = match schema.get("type").and_then(Value::as_str) {
                Some("integer" | "number") => json!(1),
                Some("boolean") => json!(true),
                _ => json!("mock"),
            };
            args.insert(k.clone(), v);
        }
    }
    if let Some((_, given)) = chosen {
        args.extend(given.clone());
    }
    Some((name.as_str()?.to_owned(), Value::Object(args).to_string()))
}

fn error_body(proto: Proto, status: u16) -> Value {
    match proto {
        Proto::OpenAi | Proto::Responses => {
            json!({"error": {"message": format!("mock upstream error {status}"), "type": "server_error", "param": null, "code": format!("mock_{status}")}})
        }
        Proto::Ollama => json!({"error": format!("mock upstream error {status}")}),
    }
}

/// Count a request, and the error answer its plan asks for, if any
/// (`fail_first`, `status`).
fn count_or_refuse(
    shared: &Shared,
    model: &str,
    plan: &Plan,
    proto: Proto,
    prompt: u64,
) -> Option<Response> {
    if let Ok(mut s) = shared.stats.lock() {
        s.requests += 1;
        s.prompt_tokens += prompt;
    }
    if plan.fail_first > 0 {
        let mut counts = shared.fail_counts.lock().unwrap_or_else(|e| e.into_inner());
        let c = counts.entry(model.to_owned()).or_insert(0);
        *c += 1;
        if *c <= plan.fail_first {
            return Some(refusal(plan, proto, plan.fail_status));
        }
    }
    Some(refusal(plan, proto, plan.status?))
}

fn refusal(plan: &Plan, proto: Proto, status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (code, Json(error_body(proto, status))).into_response();
    if let Some(secs) = plan.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    resp
}

/// Keep the request as the last one seen (for tests that look at what the
/// gateway sent).
fn remember(shared: &Shared, headers: &HeaderMap, req: &Value, chat: bool) {
    let hv = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Ok(mut last) = shared.last.lock() {
        *last = json!({"body": req, "authorization": hv("authorization"), "x-api-key": hv("x-api-key"), "chat": chat,
            "traceparent": hv("traceparent"), "anthropic-version": hv("anthropic-version"),
            "anthropic-beta": hv("anthropic-beta")});
    }
}

/// A stateful upstream's new Response id, and the prompt billed: the
/// conversation it continues counts again, as OpenAI bills it.
fn continue_conversation(shared: &Shared, req: &Value, prompt: u64) -> (String, u64) {
    let mut conversations = shared
        .conversations
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let earlier = req.get("previous_response_id").and_then(Value::as_str);
    let prompt = prompt
        + earlier
            .and_then(|id| conversations.get(id))
            .copied()
            .unwrap_or(0);
    let response_id = format!("resp_mock{}", conversations.len() + 2);
    // The answer's own tokens are added once its length is known.
    conversations.insert(response_id.clone(), prompt);
    (response_id, prompt)
}

/// The answer of a faulty upstream, if the plan names a fault.
async fn fault(fault: &str) -> Option<Response> {
    match fault {
        "foreign_json" => {
            let creds = json!({"Code": "Success", "AccessKeyId": "ASIAMOCKMOCKMOCK",
                "SecretAccessKey": "mock-metadata-secret", "Token": "mock-token"});
            Some(Json(creds).into_response())
        }
        "html" => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<html><body>upstream exploded</body></html>",
            )
                .into_response(),
        ),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Some(StatusCode::GATEWAY_TIMEOUT.into_response())
        }
        _ => None,
    }
}

/// How many tokens the answer has, and why it ends: the plan's length, or
/// the request's cap if less; a tool call is one step (and one token).
fn output(req: &Value, proto: Proto, plan: &Plan, tool_call: bool) -> (u64, &'static str) {
    let max = match proto {
        Proto::OpenAi => req
            .get("max_completion_tokens")
            .or_else(|| req.get("max_tokens")),
        Proto::Responses => req.get("max_output_tokens"),
        Proto::Ollama => req.pointer("/options/num_predict"),
    }
    .and_then(Value::as_u64);
    let planned = if tool_call { 1 } else { plan.tokens };
    let n = planned.min(max.unwrap_or(u64::MAX));
    let finish = if max.is_some_and(|m| m < planned) {
        "length"
    } else if tool_call && proto == Proto::OpenAi {
        "tool_calls"
    } else {
        "stop"
    };
    (n, finish)
}

async fn generate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
    proto: Proto,
    chat: bool,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(error_body(proto, 400))).into_response();
    };
    remember(&shared, &headers, &req, chat);
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock")
        .to_owned();
    let plan = Plan::from_model(&model);
    let mut prompt = count_prompt(&req, proto, chat);
    let mut response_id = responses::ID.to_owned();
    if plan.stateful && proto == Proto::Responses {
        (response_id, prompt) = continue_conversation(&shared, &req, prompt);
    }
    if let Some(refusal) = count_or_refuse(&shared, &model, &plan, proto, prompt) {
        return refusal;
    }
    if let Some(port) = plan.redirect_port {
        let path = if chat {
            "/v1/chat/completions"
        } else {
            "/v1/completions"
        };
        let to = format!("http://localhost:{port}{path}");
        return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response();
    }
    if let Some(faulty) = fault(&plan.fault).await {
        return faulty;
    }
    let stream = match proto {
        Proto::OpenAi | Proto::Responses => {
            req.get("stream").and_then(Value::as_bool).unwrap_or(false)
        }
        Proto::Ollama => req.get("stream").and_then(Value::as_bool).unwrap_or(true),
    };
    let tool_call = if chat && plan.tools {
        tool_call(&req, proto, plan.tool.as_ref())
    } else {
        None
    };
    let (n, finish) = output(&req, proto, &plan, tool_call.is_some());
    if plan.stateful
        && let Some(billed) = shared
            .conversations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&response_id)
    {
        *billed += n;
    }
    let plan_out = Gen {
        shared,
        response_id,
        proto,
        chat,
        model,
        prompt,
        n,
        finish,
        plan,
        tool_call,
    };
    if !stream {
        return plan_out.buffered().await;
    }
    let include_usage = proto == Proto::OpenAi
        && req
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
    plan_out.streamed(include_usage)
}

struct Gen {
    shared: Arc<Shared>,
    /// The id of a Responses answer.
    response_id: String,
    proto: Proto,
    chat: bool,
    model: String,
    prompt: u64,
    n: u64,
    finish: &'static str,
    plan: Plan,
    /// Answer with this call (name, JSON arguments) instead of text.
    tool_call: Option<(String, String)>,
}

/// Wall-clock microseconds, comparable across processes on one machine.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn word(i: u64) -> String {
    format!(" w{i}")
}

impl Gen {
    fn served(&self, tokens: u64) {
        if let Ok(mut s) = self.shared.stats.lock() {
            s.completion_tokens += tokens;
        }
    }

    fn cached(&self) -> u64 {
        self.plan.cached.min(self.prompt)
    }

    fn usage(&self) -> Value {
        if let Some(n) = &self.plan.report_tokens {
            // Kept as written: a number too big for any integer type too.
            let n: Value = serde_json::from_str(n).unwrap_or(Value::Null);
            return json!({"prompt_tokens": self.prompt, "completion_tokens": n, "total_tokens": n});
        }
        json!({"prompt_tokens": self.prompt, "completion_tokens": self.n, "total_tokens": self.prompt + self.n,
            "prompt_tokens_details": {"cached_tokens": self.cached()}})
    }

    async fn buffered(self) -> Response {
        let delay = self.plan.ttft + self.plan.itl * u32::try_from(self.n).unwrap_or(0);
        // Even a zero sleep waits for the timer's next 1 ms tick: a
        // millisecond on every answer of a mock meant to be the floor.
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.plan.fault == "garbage" {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "this is not json",
            )
                .into_response();
        }
        let text: String = (0..self.n).map(word).collect();
        self.served(self.n);
        let body = match (self.proto, self.chat) {
            (Proto::Responses, _) => self.response_body(&text),
            (Proto::OpenAi, chat) => {
                let choice = if let Some((name, args)) = &self.tool_call {
                    let call = json!({"id": "call_mock1", "type": "function", "function": {"name": name, "arguments": args}});
                    json!({"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [call]}, "logprobs": null, "finish_reason": self.finish})
                } else if chat {
                    json!({"index": 0, "message": {"role": "assistant", "content": text, "refusal": null}, "logprobs": null, "finish_reason": self.finish})
                } else {
                    json!({"index": 0, "text": text, "logprobs": null, "finish_reason": self.finish})
                };
                let mut b = json!({"id": "mock-1", "object": if chat { "chat.completion" } else { "text_completion" },
                    "created": 1_700_000_000, "model": self.model, "choices": [choice]});
                if self.plan.usage {
                    b["usage"] = self.usage();
                }
                b
            }
            (Proto::Ollama, chat) => {
                let mut b = json!({"model": self.model, "created_at": "2025-01-01T00:00:00Z", "done": true, "done_reason": self.finish});
                if chat {
                    b["message"] = self.ollama_message(&text);
                } else {
                    b["response"] = Value::from(text);
                }
                if self.plan.usage {
                    b["prompt_eval_count"] = self.prompt.into();
                    b["eval_count"] = self.n.into();
                }
                b
            }
        };
        Json(body).into_response()
    }

    fn ollama_message(&self, text: &str) -> Value {
        match &self.tool_call {
            Some((name, args)) => {
                let args: Value = serde_json::from_str(args).unwrap_or(Value::Null);
                json!({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": name, "arguments": args}}]})
            }
            None => json!({"role": "assistant", "content": text}),
        }
    }

    fn event(&self, i: Option<u64>, finish: Option<&str>) -> String {
        let text = i.map(word).unwrap_or_default();
        match self.proto {
            Proto::Responses => self.response_event(i),
            Proto::OpenAi => {
                let choice = if self.chat {
                    let delta = match (&self.tool_call, i) {
                        (Some((name, args)), Some(_)) => {
                            json!({"tool_calls": [{"index": 0, "id": "call_mock1",
                            "type": "function", "function": {"name": name, "arguments": args}}]})
                        }
                        (None, Some(_)) => json!({"content": text}),
                        (_, None) => json!({}),
                    };
                    json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
                } else {
                    json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
                };
                let obj = if self.chat {
                    "chat.completion.chunk"
                } else {
                    "text_completion"
                };
                let mut c = json!({"id": "mock-1", "object": obj, "created": 1_700_000_000, "model": self.model, "choices": [choice]});
                if self.plan.stamp {
                    c["mock_sent_us"] = unix_micros().into();
                }
                format!("data: {c}\n\n")
            }
            Proto::Ollama => {
                let mut c = json!({"model": self.model, "created_at": "2025-01-01T00:00:00Z", "done": finish.is_some()});
                if self.chat && i.is_some() {
                    c["message"] = self.ollama_message(&text);
                } else if self.chat {
                    c["message"] = json!({"role": "assistant", "content": ""});
                } else {
                    c["response"] = Value::from(text);
                }
                if let Some(f) = finish {
                    c["done_reason"] = Value::from(f);
                    if self.plan.usage {
                        c["prompt_eval_count"] = self.prompt.into();
                        c["eval_count"] = self.n.into();
                    }
                }
                format!("{c}\n")
            }
        }
    }

    fn streamed(self, include_usage: bool) -> Response {
        let content_type = match self.proto {
            Proto::OpenAi | Proto::Responses => "text/event-stream",
            Proto::Ollama => "application/x-ndjson",
        };
        // Each step yields one piece; `None` ends the body (a cut when early).
        let body = stream::unfold(
            (self, 0u64, include_usage, false),
            |(g, step, usage, done)| async move {
                if done {
                    return None;
                }
                let delay = if step == 0 { g.plan.ttft } else { g.plan.itl };
                tokio::time::sleep(delay).await;
                let fault_now = !g.plan.fault.is_empty() && step == g.plan.after.min(g.n);
                if g.plan.fault == "garbage" {
                    return Some((
                        Ok::<_, Infallible>("%%% not a stream %%%\n\n".to_string()),
                        (g, step + 1, usage, true),
                    ));
                }
                if fault_now {
                    match g.plan.fault.as_str() {
                        "cut" => return None,
                        "hang_body" => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return None;
                        }
                        "malformed" => {
                            let bad = if g.proto == Proto::Ollama {
                                "{\"message\": \n"
                            } else {
                                "data: {\"choices\": [\n\n"
                            };
                            return Some((Ok(bad.to_string()), (g, step + 1, usage, true)));
                        }
                        "error_event" => {
                            let e = error_body(g.proto, 500);
                            let s = match g.proto {
                                Proto::OpenAi => format!("data: {e}\n\ndata: [DONE]\n\n"),
                                Proto::Responses => g.response_failed(),
                                Proto::Ollama => format!("{e}\n"),
                            };
                            return Some((Ok(s), (g, step + 1, usage, true)));
                        }
                        _ => {}
                    }
                }
                if step < g.n {
                    g.served(1);
                    let e = g.event(Some(step), None);
                    return Some((Ok(e), (g, step + 1, usage, false)));
                }
                if g.proto == Proto::Responses {
                    return Some((Ok(g.response_tail()), (g, step + 1, usage, true)));
                }
                let mut tail = g.event(None, Some(g.finish));
                if g.proto == Proto::OpenAi {
                    if usage && g.plan.usage {
                        let c = json!({"id": "mock-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
                        "model": g.model, "choices": [], "usage": g.usage()});
                        tail.push_str(&format!("data: {c}\n\n"));
                    }
                    tail.push_str("data: [DONE]\n\n");
                }
                Some((Ok(tail), (g, step + 1, usage, true)))
            },
        );
        Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from_stream(body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}
