//! Metrics, recorded through the `metrics` facade (no IO, builds for
//! wasm32): whichever runtime installs a recorder gets them; the native
//! server renders them in the Prometheus text format at `GET /metrics`.
//!
//! Names follow the OpenTelemetry GenAI conventions where they exist
//! (`gen_ai.client.operation.duration`, `gen_ai.client.token.usage`, as
//! Prometheus names); the rest are the gateway's own (`modelgate_*`).
//! Labels are bounded: endpoint, configured model and deployment names,
//! status class and closed vocabularies; never a key id, a request id or
//! a raw path.

mod handles;

use tracing::field::Empty;

use crate::domain::UsageRecord;
use crate::error::GatewayError;
use crate::request::Endpoint;
use crate::routing::Outcome;

/// The Prometheus text format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Requests answered, by endpoint, model (configured ones only: empty
/// before the model was resolved), status class and error type.
pub const REQUESTS: &str = "modelgate_requests_total";
/// Requests admitted and not yet settled.
pub const IN_FLIGHT: &str = "modelgate_requests_in_flight";
/// Requests refused by a limit, by reason.
pub const REFUSALS: &str = "modelgate_refusals_total";
/// Attempts on upstream deployments, by model, deployment and outcome.
pub const ATTEMPTS: &str = "modelgate_upstream_attempts_total";
/// Seconds from admission to the end of the answer (histogram).
pub const DURATION: &str = "gen_ai_client_operation_duration_seconds";
/// Seconds from admission to the first upstream chunk of a stream
/// (histogram).
pub const FIRST_TOKEN: &str = "gen_ai_server_time_to_first_token_seconds";
/// Tokens per request, by model and `gen_ai_token_type` (histogram).
pub const TOKENS: &str = "gen_ai_client_token_usage";
/// What requests cost, by model: nano-dollars, so that a counter adds them
/// exactly (divide by 1e9 for USD).
pub const COST: &str = "modelgate_cost_nanodollars_total";
/// MCP tool calls routed to a server, by server, tool and outcome.
pub const MCP_CALLS: &str = "modelgate_mcp_tool_calls_total";
/// How long MCP tool calls took, by server and outcome.
pub const MCP_DURATION: &str = "modelgate_mcp_tool_call_duration_seconds";
/// The gateway's own time on a request, by phase (histogram): `admit`
/// from the request's arrival to its first upstream attempt (key, body,
/// limits, reservation), `settle` the settlement's write.
pub const OVERHEAD: &str = "modelgate_gateway_overhead_seconds";

/// Explicit buckets (Prometheus histograms, not summaries): the GenAI
/// conventions' own.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Buckets of [`OVERHEAD`]: 50 µs to 1 s.
pub const OVERHEAD_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0,
];
/// See [`DURATION_BUCKETS`].
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Describe every metric to the recorder just installed (Prometheus'
/// `# HELP` lines), and keep the handles registered from now on.
pub fn describe() {
    handles::keep();
    metrics::describe_counter!(REQUESTS, "Requests answered on the proxied endpoints.");
    metrics::describe_gauge!(IN_FLIGHT, "Requests admitted and not yet settled.");
    metrics::describe_counter!(REFUSALS, "Requests refused by a key's limit.");
    metrics::describe_counter!(MCP_CALLS, "MCP tool calls routed to a server.");
    metrics::describe_histogram!(
        MCP_DURATION,
        metrics::Unit::Seconds,
        "How long MCP tool calls took, the server's answer read."
    );
    metrics::describe_counter!(ATTEMPTS, "Attempts on upstream deployments.");
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Admission to the end of the answer."
    );
    metrics::describe_histogram!(
        TOKENS,
        "Tokens of one request, by type (input includes cached_input)."
    );
    metrics::describe_counter!(
        COST,
        "What requests cost, in nano-dollars (priced models only)."
    );
    metrics::describe_histogram!(
        OVERHEAD,
        metrics::Unit::Seconds,
        "The gateway's own time on a request, by phase."
    );
    metrics::describe_histogram!(
        FIRST_TOKEN,
        metrics::Unit::Seconds,
        "Admission to the first upstream chunk of a stream."
    );
}

/// The GenAI conventions' `gen_ai.operation.name` of an endpoint.
fn operation(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Chat | Endpoint::Responses | Endpoint::Messages => "chat",
        Endpoint::Completion => "text_completion",
        Endpoint::Embeddings => "embeddings",
    }
}

/// The span of one proxied request, for OpenTelemetry when a runtime
/// exports spans (field names are the GenAI conventions' attributes; the
/// model, tokens and status are recorded as they become known). It lives
/// until the request is settled, a stream's end included.
pub fn request_span(endpoint: Endpoint, request_id: &str) -> tracing::Span {
    tracing::info_span!("gen_ai.request", otel.name = operation(endpoint), otel.kind = "server",
        gen_ai.operation.name = operation(endpoint), gen_ai.request.model = Empty,
        gen_ai.usage.input_tokens = Empty, gen_ai.usage.output_tokens = Empty,
        http.response.status_code = Empty, error.type = Empty, modelgate.request_id = request_id,
        modelgate.endpoint = endpoint.as_str())
}

/// The span of one MCP request (attributes as agentgateway and the GenAI
/// conventions name them: the method, and the tool once known).
pub fn mcp_span(request_id: &str) -> tracing::Span {
    tracing::info_span!(
        "mcp.request",
        otel.name = "mcp",
        otel.kind = "server",
        mcp.method.name = Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = Empty,
        modelgate.request_id = request_id
    )
}

/// The request's model is known: its attribute, and the span's name the
/// conventions give (`{operation} {model}`, for the runtime to apply).
pub fn request_model(span: &tracing::Span, endpoint: Endpoint, model: &str) -> String {
    span.record("gen_ai.request.model", model);
    format!("{} {model}", operation(endpoint))
}

/// The span of one attempt on an upstream deployment (a child of the
/// request's; the runtime's HTTP client sends its context upstream as W3C
/// `traceparent`). Never the deployment's URL.
pub fn attempt_span(
    endpoint: Endpoint,
    upstream_model: &str,
    deployment: &str,
    provider: &str,
) -> tracing::Span {
    tracing::info_span!("gen_ai.upstream", otel.name = format!("{} {upstream_model}", operation(endpoint)),
        otel.kind = "client", gen_ai.operation.name = operation(endpoint),
        gen_ai.request.model = upstream_model, gen_ai.provider.name = provider,
        modelgate.deployment = deployment, http.response.status_code = Empty, error.type = Empty)
}

/// What the request used and how it ended, on its span.
pub fn request_settled(span: &tracing::Span, u: &UsageRecord) {
    span.record("gen_ai.usage.input_tokens", u.prompt_tokens);
    span.record("gen_ai.usage.output_tokens", u.completion_tokens);
    span.record("http.response.status_code", i64::from(u.status));
    if let Some(e) = &u.error {
        span.record("error.type", e.as_str());
    }
}

/// The closed vocabulary of error types.
pub fn error_type(e: Option<&GatewayError>) -> &'static str {
    match e {
        None => "none",
        Some(GatewayError::Request(_)) => "client",
        Some(GatewayError::Auth(_)) => "auth",
        Some(GatewayError::Limit(_)) => "limit",
        Some(GatewayError::Upstream(_)) => "upstream",
        Some(GatewayError::Store(_)) => "gateway",
    }
}

/// A request to a proxied endpoint was answered (a stream: when it began).
pub fn answered(endpoint: &'static str, model: &str, status: u16, error: Option<&GatewayError>) {
    let class = match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    };
    let labels = [
        ("endpoint", endpoint),
        ("model", model),
        ("status_class", class),
        ("error_type", error_type(error)),
    ];
    handles::counter(REQUESTS, &labels, |c| c.increment(1));
    if let Some(GatewayError::Limit(l)) = error {
        handles::counter(REFUSALS, &[("reason", l.reason())], |c| c.increment(1));
    }
}

/// An MCP tool call was answered: `tool` is empty unless it succeeded
/// (client-chosen names are not labels).
pub fn mcp_tool_call(server: &str, tool: &str, outcome: &'static str, ms: i64) {
    let labels = [("server", server), ("tool", tool), ("outcome", outcome)];
    handles::counter(MCP_CALLS, &labels, |c| c.increment(1));
    let labels = [("server", server), ("outcome", outcome)];
    let secs = ms.max(0) as f64 / 1000.0;
    handles::histogram(MCP_DURATION, &labels, |h| h.record(secs));
}

/// A request was admitted (its settlement will call [`settled`]).
pub fn admitted() {
    handles::gauge(IN_FLIGHT, &[], |g| g.increment(1.0));
}

/// An admitted request was settled: its duration and tokens.
pub fn settled(u: &UsageRecord) {
    handles::gauge(IN_FLIGHT, &[], |g| g.decrement(1.0));
    let op = u.endpoint.as_deref().unwrap_or("unknown");
    let model = ("gen_ai_request_model", u.model.as_str());
    let secs = u.latency_ms.max(0) as f64 / 1000.0;
    let labels = [("gen_ai_operation_name", op), model];
    handles::histogram(DURATION, &labels, |h| h.record(secs));
    if let Some(n) = u.cost_nanos.and_then(|n| u64::try_from(n).ok()) {
        handles::counter(COST, &[model], |c| c.increment(n));
    }
    let kinds = [
        ("input", u.prompt_tokens),
        ("cached_input", u.cached_tokens),
        ("output", u.completion_tokens),
    ];
    for (kind, n) in kinds {
        if n > 0 {
            let labels = [
                ("gen_ai_operation_name", op),
                model,
                ("gen_ai_token_type", kind),
            ];
            handles::histogram(TOKENS, &labels, |h| h.record(n as f64));
        }
    }
}

/// The gateway spent `us` microseconds on a request's `phase` (see
/// [`OVERHEAD`]).
pub fn overhead(phase: &'static str, us: u64) {
    handles::histogram(OVERHEAD, &[("phase", phase)], |h| h.record(us as f64 / 1e6));
}

/// A stream's first upstream chunk arrived `ms` after admission.
pub fn first_token(endpoint: &'static str, model: &str, ms: i64) {
    let labels = [
        ("gen_ai_operation_name", endpoint),
        ("gen_ai_request_model", model),
    ];
    handles::histogram(FIRST_TOKEN, &labels, |h| {
        h.record(ms.max(0) as f64 / 1000.0)
    });
}

/// One attempt on a deployment came to `outcome`.
pub fn attempt(model: &str, deployment: &str, outcome: Outcome) {
    let outcome = match outcome {
        Outcome::Ok => "ok",
        Outcome::Failed => "failed",
        Outcome::RateLimited { .. } => "rate_limited",
    };
    let labels = [
        ("model", model),
        ("deployment", deployment),
        ("outcome", outcome),
    ];
    handles::counter(ATTEMPTS, &labels, |c| c.increment(1));
}
