//! Backends: one module per upstream protocol behind the closed
//! [`BackendKind`] enum.
//!
//! Each backend builds an `http::Request<Bytes>` and reads an
//! `http::Response<Bytes>` or a stream of chunks: no IO here. openai, api3,
//! vllm and llamacpp speak the OpenAI protocol and differ in paths and auth
//! (`compat` holds what they share); ollama speaks its native API, which
//! the `ollama` module transcodes both ways; anthropic speaks Anthropic's
//! Messages API (the `anthropic` module).

mod anthropic;
mod api3;
mod chat_events;
mod compat;
mod llamacpp;
mod native_responses;
mod ollama;
mod ollama_embed;
mod openai;
mod tokens;
mod vllm;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{RequestError, UpstreamError};
use crate::request::{Endpoint, ProxyRequest};

pub use anthropic::{ChatFromMessagesRelay, MessagesPassRelay};
pub use chat_events::ChatEvents;
pub use compat::SseRelay;
pub(crate) use native_responses::write_typed_event;
pub use native_responses::{NativeResponsesRelay, name_response, response_id};
pub use ollama::NdjsonRelay;
pub use tokens::Counted;

/// The upstream protocols ModelGate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// OpenAI and compatible APIs with `Authorization: Bearer`; base URL
    /// includes `/v1`.
    Openai,
    /// Third-party OpenAI-compatible APIs authenticated with `x-api-key`;
    /// base URL includes `/v1`.
    Api3,
    /// vLLM's OpenAI server; base URL is the server root.
    Vllm,
    /// llama.cpp's `llama-server`; base URL is the server root.
    Llamacpp,
    /// Ollama's native API (`/api/chat`, `/api/generate`, `/api/tags`).
    Ollama,
    /// Anthropic's Messages API (`x-api-key`, `anthropic-version`); base
    /// URL is the API root (`https://api.anthropic.com`).
    Anthropic,
}

impl BackendKind {
    /// Every backend, for validation messages.
    pub const ALL: [BackendKind; 6] = [
        Self::Openai,
        Self::Api3,
        Self::Vllm,
        Self::Llamacpp,
        Self::Ollama,
        Self::Anthropic,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Api3 => "api3",
            Self::Vllm => "vllm",
            Self::Llamacpp => "llamacpp",
            Self::Ollama => "ollama",
            Self::Anthropic => "anthropic",
        }
    }

    /// Parse the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// How `/v1/responses` is served when the model does not say: OpenAI
    /// natively; the others through the chat bridge, which works on every
    /// build of them (vLLM, llama.cpp and Ollama added native Responses
    /// late, each with gaps).
    pub fn default_responses_api(self) -> ResponsesApi {
        match self {
            Self::Openai => ResponsesApi::Native,
            Self::Api3 | Self::Vllm | Self::Llamacpp | Self::Ollama | Self::Anthropic => {
                ResponsesApi::Bridge
            }
        }
    }

    /// Whether the upstream speaks the OpenAI protocol.
    fn is_compat(self) -> bool {
        !matches!(self, Self::Ollama | Self::Anthropic)
    }

    /// How `/v1/messages` is served when the model does not say: Anthropic
    /// natively; the others through the chat bridge, which every build of
    /// them serves (llama.cpp, vLLM and Ollama added `/v1/messages` late).
    pub fn default_messages_api(self) -> MessagesApi {
        match self {
            Self::Anthropic => MessagesApi::Native,
            Self::Openai | Self::Api3 | Self::Vllm | Self::Llamacpp | Self::Ollama => {
                MessagesApi::Bridge
            }
        }
    }

    fn url(self, base: &str, endpoint: Option<Endpoint>) -> String {
        let base = base.trim_end_matches('/');
        match self {
            Self::Openai => openai::url(base, endpoint),
            Self::Api3 => api3::url(base, endpoint),
            Self::Vllm => vllm::url(base, endpoint),
            Self::Llamacpp => llamacpp::url(base, endpoint),
            Self::Ollama => ollama::url(base, endpoint),
            Self::Anthropic => anthropic::url(base, endpoint),
        }
    }

    fn auth(self, key: Option<&str>) -> Option<(HeaderName, String)> {
        let key = key.filter(|k| !k.is_empty());
        match self {
            Self::Api3 | Self::Anthropic => {
                key.map(|k| (HeaderName::from_static("x-api-key"), k.to_owned()))
            }
            Self::Openai | Self::Vllm | Self::Llamacpp | Self::Ollama => {
                key.map(|k| (AUTHORIZATION, format!("Bearer {k}")))
            }
        }
    }

    /// Build the upstream request for a validated client request.
    pub fn build(
        self,
        target: &Target<'_>,
        call: &UpstreamCall,
    ) -> Result<http::Request<Bytes>, RequestError> {
        let body = match (self, call.endpoint) {
            (Self::Anthropic, _) | (_, Endpoint::Messages) => {
                anthropic::body(call, target.model, self == Self::Anthropic)?
            }
            (Self::Ollama, Endpoint::Embeddings) => ollama_embed::ollama_body(call, target.model),
            (Self::Ollama, Endpoint::Chat | Endpoint::Completion) => {
                ollama::body(call, target.model)?
            }
            _ => compat::body(self, call, target.model),
        };
        let bytes =
            serde_json::to_vec(&body).map_err(|e| RequestError::invalid(e.to_string(), None))?;
        let mut req = self.request(
            Method::POST,
            target,
            Some(call.endpoint),
            Bytes::from(bytes),
        )?;
        // A Messages client's version and betas go on unchanged.
        if call.endpoint == Endpoint::Messages {
            for (name, value) in &call.anthropic_headers {
                req.headers_mut().insert(name.clone(), value.clone());
            }
        }
        Ok(req)
    }

    /// Build the request that lists the upstream's models.
    pub fn models_request(self, target: &Target<'_>) -> Result<http::Request<Bytes>, RequestError> {
        self.request(Method::GET, target, None, Bytes::new())
    }

    /// Build the request for the upstream's cheap readiness signal, never a
    /// generation: llama.cpp's and vLLM's `/health` (503 while loading or
    /// dead), Ollama's `/api/version`, and the model list of the OpenAI
    /// protocol's APIs.
    pub fn health_request(self, target: &Target<'_>) -> Result<http::Request<Bytes>, RequestError> {
        let base = target.base_url.trim_end_matches('/');
        let url = match self {
            Self::Vllm | Self::Llamacpp => format!("{base}/health"),
            Self::Ollama => format!("{base}/api/version"),
            Self::Openai | Self::Api3 | Self::Anthropic => self.url(base, None),
        };
        self.request_to(Method::GET, target, url, Bytes::new())
    }

    fn request(
        self,
        method: Method,
        target: &Target<'_>,
        endpoint: Option<Endpoint>,
        body: Bytes,
    ) -> Result<http::Request<Bytes>, RequestError> {
        let url = self.url(target.base_url, endpoint);
        self.request_to(method, target, url, body)
    }

    fn request_to(
        self,
        method: Method,
        target: &Target<'_>,
        url: String,
        body: Bytes,
    ) -> Result<http::Request<Bytes>, RequestError> {
        let mut b = http::Request::builder().method(method).uri(url);
        if !body.is_empty() {
            b = b.header(CONTENT_TYPE, "application/json");
        }
        if let Some((name, value)) = self.auth(target.api_key) {
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                RequestError::invalid(
                    "The model's upstream key is not a valid header value.",
                    None,
                )
            })?;
            value.set_sensitive(true);
            b = b.header(name, value);
        }
        if self == Self::Anthropic {
            b = b.header("anthropic-version", anthropic::VERSION);
        }
        b.body(body)
            .map_err(|_| RequestError::invalid("The model's base URL is not a valid URL.", None))
    }

    /// Names of the models in a successful models-list answer.
    pub fn parse_models(self, body: &[u8]) -> Result<Vec<String>, UpstreamError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| UpstreamError::BadResponse {
            status: 0,
            detail: format!("models list: {e}"),
        })?;
        let (list, field) = if self.is_compat() {
            ("data", "id")
        } else {
            ("models", "name")
        };
        Ok(v.get(list)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.get(field)?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Read a buffered upstream answer: the client body and the usage.
    pub fn parse_response(
        self,
        call: &UpstreamCall,
        status: u16,
        body: &[u8],
        created_s: i64,
    ) -> Result<(Bytes, Option<Usage>), UpstreamError> {
        if !(200..300).contains(&status) {
            return Err(upstream_error(status, body));
        }
        match (self, call.endpoint) {
            (Self::Anthropic, _) | (_, Endpoint::Messages) => {
                anthropic::parse(call, body, created_s)
            }
            (_, Endpoint::Responses) => native_responses::parse(body),
            (Self::Ollama, Endpoint::Embeddings) => ollama_embed::from_ollama(call, body),
            (Self::Ollama, _) => ollama::parse(call, body, created_s),
            (_, endpoint) => compat::parse(endpoint, body),
        }
    }

    /// The per-chunk hook for a streamed answer.
    pub fn relay(self, call: &UpstreamCall, created_s: i64) -> Relay {
        if call.endpoint == Endpoint::Messages {
            return Relay::MessagesPass(Box::new(MessagesPassRelay::new(&call.public_model)));
        }
        if self == Self::Anthropic {
            return Relay::ChatFromMessages(Box::new(ChatFromMessagesRelay::new(
                &call.request_id,
                &call.public_model,
                created_s,
                call.client_include_usage,
            )));
        }
        if call.endpoint == Endpoint::Responses {
            let id = response_id(&call.request_id);
            Relay::Responses(NativeResponsesRelay::new(id))
        } else if self.is_compat() {
            Relay::Sse(SseRelay::new(call.client_include_usage))
        } else {
            Relay::Ndjson(NdjsonRelay::new(call, created_s))
        }
    }

    /// Whether this backend can serve the request at all.
    pub fn supports(self, req: &ProxyRequest) -> Result<(), RequestError> {
        match (self, req.endpoint) {
            (Self::Anthropic, _) => anthropic::supports(req),
            (Self::Ollama, Endpoint::Embeddings) => ollama_embed::ollama_supports(req),
            (Self::Ollama, Endpoint::Chat | Endpoint::Completion) => ollama::supports(req),
            _ => Ok(()),
        }
    }
}

/// How a model serves `/v1/responses` (and, as [`MessagesApi`],
/// `/v1/messages`): a client API some upstreams speak themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponsesApi {
    /// Forward to the upstream's own endpoint.
    Native,
    /// Translate to chat completions and back (see [`crate::responses`]
    /// and [`crate::anthropic`]).
    Bridge,
}

/// How a model serves `/v1/messages`: natively (Anthropic; llama.cpp, vLLM
/// and Ollama >= 0.14 serve it too) or through the chat bridge.
pub type MessagesApi = ResponsesApi;

impl ResponsesApi {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Bridge => "bridge",
        }
    }

    /// Parse the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Native, Self::Bridge]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Where to send: one deployment's base URL, model name and key.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Base URL.
    pub base_url: &'a str,
    /// The model name the upstream knows.
    pub model: &'a str,
    /// Upstream key, if any.
    pub api_key: Option<&'a str>,
}

/// What goes upstream, prepared once and sent to each endpoint tried.
#[derive(Debug, Clone)]
pub struct UpstreamCall {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The client's body.
    pub body: Map<String, Value>,
    /// The public model name (for answers the gateway writes itself).
    pub public_model: String,
    /// Request id, for generated response ids.
    pub request_id: String,
    /// Streamed.
    pub stream: bool,
    /// The client asked for the usage chunk.
    pub client_include_usage: bool,
    /// Ask the upstream for the usage chunk.
    pub upstream_include_usage: bool,
    /// A completion cap the gateway sets because the client set none.
    pub injected_max_tokens: Option<u64>,
    /// A Messages client's `anthropic-version` and `anthropic-beta`, for an
    /// Anthropic upstream.
    pub anthropic_headers: Vec<(HeaderName, HeaderValue)>,
}

/// Token usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Of the prompt tokens, those the upstream served from its prompt
    /// cache (priced as cached; 0 when it did not say).
    #[serde(default)]
    pub cached_tokens: i64,
    /// Of the prompt tokens, those written to the upstream's prompt cache
    /// for five minutes, and for an hour (Anthropic prices writes above
    /// input; 0 elsewhere).
    #[serde(default)]
    pub cache_writes: (i64, i64),
}

/// The largest token count taken from an upstream: a figure past it is
/// read as this (no request comes near; sums over ten million records of it
/// still fit the stores' 64-bit columns).
pub const MAX_REPORTED_TOKENS: i64 = 1_000_000_000_000;

impl Usage {
    /// A usage of the counts an upstream reported: negative ones as 0,
    /// absurd ones as [`MAX_REPORTED_TOKENS`].
    pub fn reported(prompt_tokens: i64, completion_tokens: i64) -> Self {
        let bound = |n: i64| n.clamp(0, MAX_REPORTED_TOKENS);
        Self {
            prompt_tokens: bound(prompt_tokens),
            completion_tokens: bound(completion_tokens),
            cached_tokens: 0,
            cache_writes: (0, 0),
        }
    }

    /// This usage with `five_min` and `one_hour` of its prompt tokens
    /// written to the cache (within what the cache did not serve).
    pub fn with_cache_writes(self, five_min: i64, one_hour: i64) -> Self {
        let room = self.prompt_tokens - self.cached_tokens;
        let one_hour = one_hour.clamp(0, room);
        Self {
            cache_writes: (five_min.clamp(0, room - one_hour), one_hour),
            ..self
        }
    }

    /// This usage with `cached` of its prompt tokens served from a cache.
    pub fn with_cached(self, cached: i64) -> Self {
        Self {
            cached_tokens: cached.clamp(0, self.prompt_tokens),
            ..self
        }
    }

    /// The OpenAI `usage` object.
    pub fn to_json(self) -> Value {
        let mut v = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens.saturating_add(self.completion_tokens),
        });
        if self.cached_tokens > 0 {
            v["prompt_tokens_details"] = json!({"cached_tokens": self.cached_tokens});
        }
        v
    }

    /// Read an OpenAI `usage` object.
    pub fn from_json(v: &Value) -> Option<Self> {
        // A count past i64 (a u64 or a float) is read as the bound.
        let n = |k: &str| {
            v.get(k)
                .and_then(|n| n.as_i64().or_else(|| n.is_number().then_some(i64::MAX)))
                .filter(|n| *n >= 0)
        };
        // Chat's names, or the Responses API's.
        let prompt_tokens = n("prompt_tokens").or_else(|| n("input_tokens"))?;
        let completion_tokens = n("completion_tokens")
            .or_else(|| n("output_tokens"))
            .or_else(|| n("total_tokens").map(|t| t.saturating_sub(prompt_tokens)))
            .unwrap_or(0);
        // Chat's `prompt_tokens_details`, or the Responses API's
        // `input_tokens_details`.
        let cached = ["prompt_tokens_details", "input_tokens_details"]
            .iter()
            .find_map(|d| v.get(d)?.get("cached_tokens")?.as_i64())
            .unwrap_or(0);
        Some(Self::reported(prompt_tokens, completion_tokens).with_cached(cached))
    }
}

/// The per-chunk hook of a stream, by upstream protocol.
#[derive(Debug)]
pub enum Relay {
    /// OpenAI-compatible SSE, relayed event by event.
    Sse(SseRelay),
    /// Ollama NDJSON, transcoded to OpenAI SSE.
    Ndjson(NdjsonRelay),
    /// An upstream's own Responses events, relayed event by event.
    Responses(NativeResponsesRelay),
    /// An Anthropic upstream's Messages events, relayed as they are.
    MessagesPass(Box<MessagesPassRelay>),
    /// An Anthropic upstream's Messages events as chat chunks.
    ChatFromMessages(Box<ChatFromMessagesRelay>),
}

impl Relay {
    /// A Responses relay names its Responses' `previous_response_id` the
    /// one the client gave (`previous`), whatever the upstream knows it by.
    pub fn with_previous_response_id(self, previous: Option<String>) -> Self {
        match self {
            Self::Responses(r) => Self::Responses(r.with_previous_response_id(previous)),
            other => other,
        }
    }
}

/// How a relayed stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The upstream finished properly.
    Complete,
    /// The upstream reported an error in-band (passed to the client).
    UpstreamError,
    /// The gateway ended the stream with an error event; the code says why.
    Failed(&'static str),
}

impl Relay {
    /// Feed upstream bytes; client bytes are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        match self {
            Self::Sse(r) => r.feed(chunk, out),
            Self::Ndjson(r) => r.feed(chunk, out),
            Self::Responses(r) => r.feed(chunk, out),
            Self::MessagesPass(r) => r.feed(chunk, out),
            Self::ChatFromMessages(r) => r.feed(chunk, out),
        }
    }

    /// The upstream body ended: close the client stream properly.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Self::Sse(r) => r.finish(out),
            Self::Ndjson(r) => r.finish(out),
            Self::Responses(r) => r.finish(out),
            // A Messages stream is over only at `message_stop` (or `error`).
            Self::MessagesPass(_) | Self::ChatFromMessages(_) => self.fail(
                "upstream_stream_cut",
                "The upstream stream ended before it was complete.",
                out,
            ),
        }
    }

    /// End the stream now with an in-band error event (and `[DONE]` on
    /// chat streams).
    pub fn fail(&mut self, code: &'static str, message: &str, out: &mut Vec<u8>) {
        match self {
            Self::Responses(r) => return r.fail(code, message, out),
            Self::MessagesPass(r) => return r.fail(code, message, out),
            Self::ChatFromMessages(r) => return r.fail(code, message, out),
            Self::Sse(_) | Self::Ndjson(_) => {}
        }
        let state = self.state_mut();
        if state.outcome.is_none() {
            write_error_event(out, code, message);
            state.outcome = Some(StreamOutcome::Failed(code));
        }
    }

    /// A keep-alive event, for a client whose API has one (Anthropic's
    /// `ping`).
    pub fn ping(&mut self, out: &mut Vec<u8>) {
        if let Self::MessagesPass(r) = self {
            r.ping(out);
        }
    }

    /// Whether the client stream is closed (nothing more will be written).
    pub fn is_done(&self) -> bool {
        self.state().outcome.is_some()
    }

    /// What the stream has told of itself so far.
    pub fn state(&self) -> &StreamState {
        match self {
            Self::Sse(r) => &r.state,
            Self::Ndjson(r) => &r.state,
            Self::Responses(r) => &r.state,
            Self::MessagesPass(r) => &r.state,
            Self::ChatFromMessages(r) => &r.state,
        }
    }

    fn state_mut(&mut self) -> &mut StreamState {
        match self {
            Self::Sse(r) => &mut r.state,
            Self::Ndjson(r) => &mut r.state,
            Self::Responses(r) => &mut r.state,
            Self::MessagesPass(r) => &mut r.state,
            Self::ChatFromMessages(r) => &mut r.state,
        }
    }
}

/// What a relay learns while relaying.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Usage reported by the upstream.
    pub usage: Option<Usage>,
    /// Chunks that carried generated output (an estimate of tokens).
    pub output_chunks: i64,
    /// Set once the client stream is closed.
    pub outcome: Option<StreamOutcome>,
}

/// Write `data: {"error":...}` and `data: [DONE]`.
pub(crate) fn write_error_event(out: &mut Vec<u8>, code: &str, message: &str) {
    let ev =
        json!({"error": {"message": message, "type": "api_error", "param": null, "code": code}});
    write_event(out, &ev.to_string());
    out.extend_from_slice(b"data: [DONE]\n\n");
}

/// Write one SSE data event.
pub(crate) fn write_event(out: &mut Vec<u8>, data: &str) {
    // An upstream event may carry its JSON over several `data:` lines (the
    // decoder joins them with `\n`): each line needs its own field name, or
    // the client would read only the first (found by the `sse` fuzz target).
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Map a non-2xx upstream answer to an error the client may see.
pub(crate) fn upstream_error(status: u16, body: &[u8]) -> UpstreamError {
    // The upstream refusing the gateway's own credentials is not the
    // client's fault, and an SDK would read a 401 as "your key is wrong".
    if status == 401 || status == 403 {
        return UpstreamError::BadResponse {
            status,
            detail: "upstream refused the gateway's credentials".into(),
        };
    }
    // Redirects are never followed (an upstream key must not follow one to
    // another host), nor shown.
    if (300..400).contains(&status) {
        return UpstreamError::BadResponse {
            status,
            detail: "upstream answered with a redirect (not followed)".into(),
        };
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(Value::Object(e)) if e.get("message").is_some_and(Value::is_string) => {
            UpstreamError::OpenAi {
                status,
                error: Value::Object(e.clone()),
                retry_after_s: None,
            }
        }
        Some(Value::String(msg)) => UpstreamError::OpenAi {
            status,
            error: json!({"message": msg, "type": "upstream_error", "param": null, "code": null}),
            retry_after_s: None,
        },
        // The body may name hosts or internals: only its size is kept.
        _ => UpstreamError::BadResponse {
            status,
            detail: format!("non-OpenAI error body of {} bytes", body.len()),
        },
    }
}

#[cfg(test)]
mod tests;
