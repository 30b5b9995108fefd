//! Errors, one enum per domain, and the one place that turns them into an
//! HTTP status and an OpenAI-shaped body
//! `{"error":{"message","type","param","code"}}`.
//!
//! Nothing here carries an upstream URL, an upstream key or SQL to the client:
//! such detail lives in the `detail` fields, which only reach the log.

use http::StatusCode;
use serde_json::{Value, json};

/// Authentication and authorization failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing API key")]
    Missing,
    /// No such key.
    #[error("invalid API key")]
    Invalid,
    /// The key is disabled.
    #[error("API key disabled")]
    Disabled,
    /// The key was revoked.
    #[error("API key revoked")]
    Revoked,
    /// The key has expired.
    #[error("API key expired")]
    Expired,
    /// The client IP is not on the key's allowlist.
    #[error("IP not allowed")]
    IpNotAllowed,
    /// Not an admin key on an admin route.
    #[error("admin key required")]
    NotAdmin,
    /// A browser's request from another origin (DNS rebinding).
    #[error("origin not allowed")]
    OriginNotAllowed,
}

/// Admission refusals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Over the key's requests per minute.
    #[error("rate limited")]
    RateLimited {
        /// The key's RPM (on `model`, if named).
        limit: u32,
        /// Milliseconds until a request would be allowed.
        retry_after_ms: u64,
        /// Milliseconds until the allowance is full again.
        reset_ms: u64,
        /// The model, when the key's limit on it refused.
        model: Option<String>,
    },
    /// Over the key's tokens per minute.
    #[error("token rate limited")]
    TokensLimited {
        /// The key's TPM.
        limit: u32,
        /// The tokens this request asked for (its estimate).
        requested: i64,
        /// Milliseconds until they would be allowed.
        retry_after_ms: u64,
        /// Milliseconds until the allowance is full again.
        reset_ms: u64,
        /// The model, when the key's limit on it refused.
        model: Option<String>,
    },
    /// Not enough token quota left for this request.
    #[error("quota exhausted")]
    QuotaExceeded {
        /// Milliseconds until the quota's period starts again, if it has one.
        resets_in_ms: Option<u64>,
    },
    /// Not enough money left in the key's budget for this request.
    #[error("budget exhausted")]
    BudgetExceeded {
        /// Milliseconds until the budget's period starts again, if it has one.
        resets_in_ms: Option<u64>,
    },
}

impl LimitError {
    /// Which limit refused, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limit",
            Self::TokensLimited { .. } => "token_rate_limit",
            Self::QuotaExceeded { .. } => "quota",
            Self::BudgetExceeded { .. } => "budget",
        }
    }

    /// When waiting helps: milliseconds until a retry may be admitted.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_ms, .. } => Some(*retry_after_ms),
            // Never, for a request larger than the whole allowance.
            Self::TokensLimited {
                limit,
                requested,
                retry_after_ms,
                ..
            } => (*requested <= i64::from(*limit)).then_some(*retry_after_ms),
            Self::QuotaExceeded { resets_in_ms } | Self::BudgetExceeded { resets_in_ms } => {
                *resets_in_ms
            }
        }
    }
}

/// Problems with what the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is over the configured limit.
    #[error("body too large")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body did not arrive within the configured time.
    #[error("body too slow")]
    BodyTimeout {
        /// The deadline in seconds.
        secs: u64,
    },
    /// A parameter is missing, of the wrong type or out of range.
    #[error("{message}")]
    Invalid {
        /// What is wrong, for the client.
        message: String,
        /// The offending parameter.
        param: Option<String>,
    },
    /// The model does not exist, is disabled, or this key may not use it.
    #[error("model not found")]
    ModelNotFound(String),
    /// No such route or resource.
    #[error("not found")]
    NotFound(String),
    /// A resource a parameter names does not exist (or is not this key's).
    #[error("{message}")]
    Missing {
        /// What is missing, for the client.
        message: String,
        /// The parameter that named it.
        param: Option<String>,
    },
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A `Content-Encoding` the gateway cannot decode.
    #[error("unsupported content encoding")]
    UnsupportedEncoding(String),
    /// A unique name or id already exists.
    #[error("conflict")]
    Conflict(String),
    /// A key that spends from a budget asked for a model with no price.
    #[error("model not priced")]
    Unpriced(String),
}

impl RequestError {
    /// A 400 for `param`.
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::Invalid {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }
}

/// Upstream failures before the first byte reached the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    /// Could not connect to any endpoint.
    #[error("upstream unreachable: {detail}")]
    Connect {
        /// For the log only.
        detail: String,
    },
    /// The overall timeout passed.
    #[error("upstream timeout")]
    Timeout,
    /// No deployment could be tried.
    #[error("circuit open")]
    CircuitOpen,
    /// The upstream answered with an OpenAI-shaped error: passed through.
    #[error("upstream error status {status}")]
    OpenAi {
        /// The upstream status.
        status: u16,
        /// The upstream's `error` object.
        error: Value,
        /// The upstream's `Retry-After`, seconds, passed on with its 429 or
        /// 503 so the client's SDK waits as long as the upstream asked.
        retry_after_s: Option<u64>,
    },
    /// The upstream failed in some other way (non-JSON body, 5xx page).
    #[error("upstream bad response status {status}: {detail}")]
    BadResponse {
        /// The upstream status (0 when it was a 2xx we could not read).
        status: u16,
        /// For the log only.
        detail: String,
    },
    /// An MCP server did not answer an admin's request (the message names
    /// the server, never its URL).
    #[error("MCP server unavailable: {0}")]
    McpServer(String),
}

/// Store failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store (or limiter backend) cannot be reached or is locked.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint failed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data that cannot be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Every error the gateway can answer with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    /// See [`AuthError`].
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// See [`LimitError`].
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// See [`RequestError`].
    #[error(transparent)]
    Request(#[from] RequestError),
    /// See [`UpstreamError`].
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// See [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the client sees of an error.
struct Shape {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    message: String,
    param: Option<String>,
}

impl GatewayError {
    fn shape(&self) -> Shape {
        use GatewayError as G;
        let s = |status, kind, code: Option<&'static str>, message: String| Shape {
            status,
            kind,
            code,
            message,
            param: None,
        };
        match self {
            G::Auth(a) => {
                let (status, kind, code, msg) = match a {
                    AuthError::Missing => (
                        StatusCode::UNAUTHORIZED,
                        "invalid_request_error",
                        "missing_api_key",
                        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                    ),
                    AuthError::Invalid => (
                        StatusCode::UNAUTHORIZED,
                        "invalid_request_error",
                        "invalid_api_key",
                        "Incorrect API key provided.",
                    ),
                    AuthError::Disabled => (
                        StatusCode::UNAUTHORIZED,
                        "invalid_request_error",
                        "api_key_disabled",
                        "This API key is disabled.",
                    ),
                    AuthError::Revoked => (
                        StatusCode::UNAUTHORIZED,
                        "invalid_request_error",
                        "api_key_revoked",
                        "This API key has been revoked.",
                    ),
                    AuthError::Expired => (
                        StatusCode::UNAUTHORIZED,
                        "invalid_request_error",
                        "api_key_expired",
                        "This API key has expired.",
                    ),
                    AuthError::IpNotAllowed => (
                        StatusCode::FORBIDDEN,
                        "permission_error",
                        "ip_not_allowed",
                        "This API key may not be used from your IP address.",
                    ),
                    AuthError::NotAdmin => (
                        StatusCode::FORBIDDEN,
                        "permission_error",
                        "admin_key_required",
                        "This route requires an admin key.",
                    ),
                    AuthError::OriginNotAllowed => (
                        StatusCode::FORBIDDEN,
                        "permission_error",
                        "origin_not_allowed",
                        "Requests from this Origin are not allowed.",
                    ),
                };
                s(status, kind, Some(code), msg.to_owned())
            }
            G::Limit(LimitError::RateLimited {
                limit,
                retry_after_ms,
                model,
                ..
            }) => s(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
                format!(
                    "Rate limit reached{}: {limit} requests per minute. Please try again in {}.",
                    on_model(model.as_deref()),
                    crate::calendar::format_duration(*retry_after_ms)
                ),
            ),
            G::Limit(LimitError::TokensLimited {
                limit,
                requested,
                retry_after_ms,
                model,
                ..
            }) => s(
                StatusCode::TOO_MANY_REQUESTS,
                "tokens",
                Some("rate_limit_exceeded"),
                if *requested > i64::from(*limit) {
                    format!(
                        "Request too large: it may take {requested} tokens, over the limit of {limit} tokens per minute{}. Send a smaller prompt or set a lower max_tokens.",
                        on_model(model.as_deref())
                    )
                } else {
                    format!(
                        "Rate limit reached{}: {limit} tokens per minute (this request may take {requested}). Please try again in {}.",
                        on_model(model.as_deref()),
                        crate::calendar::format_duration(*retry_after_ms)
                    )
                },
            ),
            G::Limit(LimitError::QuotaExceeded { resets_in_ms }) => s(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                Some("insufficient_quota"),
                format!(
                    "You exceeded your current token quota{}.",
                    resets_text(*resets_in_ms)
                ),
            ),
            G::Limit(LimitError::BudgetExceeded { resets_in_ms }) => s(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                Some("insufficient_quota"),
                format!(
                    "You exceeded your current budget{}.",
                    resets_text(*resets_in_ms)
                ),
            ),
            G::Request(r) => match r {
                RequestError::BodyTooLarge { limit } => s(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request_error",
                    Some("request_too_large"),
                    format!("Request body exceeds the limit of {limit} bytes."),
                ),
                RequestError::BodyTimeout { secs } => s(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request_error",
                    Some("request_timeout"),
                    format!("The request body did not arrive within {secs} s."),
                ),
                RequestError::Invalid { message, param } => Shape {
                    status: StatusCode::BAD_REQUEST,
                    kind: "invalid_request_error",
                    code: Some("invalid_request"),
                    message: message.clone(),
                    param: param.clone(),
                },
                RequestError::ModelNotFound(name) => Shape {
                    status: StatusCode::NOT_FOUND,
                    kind: "invalid_request_error",
                    code: Some("model_not_found"),
                    message: format!(
                        "The model '{}' does not exist or you do not have access to it.",
                        printable(name)
                    ),
                    param: Some("model".to_owned()),
                },
                RequestError::NotFound(what) => s(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    Some("not_found"),
                    format!("{} not found.", printable(what)),
                ),
                RequestError::UnsupportedEncoding(e) => Shape {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    kind: "invalid_request_error",
                    code: Some("unsupported_content_encoding"),
                    message: format!(
                        "Content-Encoding '{}' is not supported: send gzip, deflate, zstd or an uncompressed body.",
                        printable(e)
                    ),
                    param: None,
                },
                RequestError::Missing { message, param } => Shape {
                    status: StatusCode::NOT_FOUND,
                    kind: "invalid_request_error",
                    code: Some("not_found"),
                    message: message.clone(),
                    param: param.clone(),
                },
                RequestError::MethodNotAllowed => s(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "invalid_request_error",
                    Some("method_not_allowed"),
                    "Method not allowed for this route.".to_owned(),
                ),
                RequestError::Unpriced(name) => Shape {
                    status: StatusCode::FORBIDDEN,
                    kind: "invalid_request_error",
                    code: Some("model_not_priced"),
                    message: format!(
                        "The model '{}' has no price and this key spends from a budget: an admin must price it (or give it prices of 0 to mark it free) first.",
                        printable(name)
                    ),
                    param: Some("model".to_owned()),
                },
                RequestError::Conflict(what) => s(
                    StatusCode::CONFLICT,
                    "invalid_request_error",
                    Some("conflict"),
                    format!("{} already exists.", printable(what)),
                ),
            },
            G::Upstream(u) => match u {
                UpstreamError::Connect { .. } => s(
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    Some("upstream_unavailable"),
                    "The upstream model server could not be reached.".to_owned(),
                ),
                UpstreamError::Timeout => s(
                    StatusCode::GATEWAY_TIMEOUT,
                    "api_error",
                    Some("upstream_timeout"),
                    "The upstream model server timed out.".to_owned(),
                ),
                UpstreamError::McpServer(message) => s(
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    Some("mcp_server_unavailable"),
                    message.clone(),
                ),
                UpstreamError::CircuitOpen => s(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    Some("upstream_unavailable"),
                    "The upstream model server is failing; try again shortly.".to_owned(),
                ),
                UpstreamError::OpenAi { status, error, .. } => {
                    let str_field =
                        |k: &str| error.get(k).and_then(Value::as_str).map(str::to_owned);
                    Shape {
                        status: StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                        kind: "upstream_error",
                        code: None,
                        message: str_field("message")
                            .unwrap_or_else(|| "The upstream returned an error.".to_owned()),
                        param: str_field("param"),
                    }
                }
                UpstreamError::BadResponse { status, .. } => s(
                    // A client-side upstream status (429, 400...) keeps its
                    // meaning; a refused gateway credential or a 5xx is a 502.
                    match StatusCode::from_u16(*status) {
                        Ok(st) if st.is_client_error() && *status != 401 && *status != 403 => st,
                        _ => StatusCode::BAD_GATEWAY,
                    },
                    "api_error",
                    Some("upstream_error"),
                    if *status == 0 {
                        "The upstream returned a response that could not be read.".to_owned()
                    } else {
                        format!("The upstream returned status {status}.")
                    },
                ),
            },
            G::Store(e) => match e {
                StoreError::Conflict(what) => s(
                    StatusCode::CONFLICT,
                    "invalid_request_error",
                    Some("conflict"),
                    format!("{} already exists.", printable(what)),
                ),
                StoreError::Unavailable(_) | StoreError::Corrupt(_) => s(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    Some("service_unavailable"),
                    "The gateway's store is unavailable; try again shortly.".to_owned(),
                ),
            },
        }
    }

    /// How long the client should wait before it tries again, seconds,
    /// when the answer is a throttle that passes: a limit of the gateway's,
    /// or an upstream's 429 or 503 that said.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            GatewayError::Limit(l) => l.retry_after_ms().map(|ms| ms.div_ceil(1000).max(1)),
            GatewayError::Upstream(UpstreamError::OpenAi {
                status: 429 | 503,
                retry_after_s,
                ..
            }) => *retry_after_s,
            _ => None,
        }
    }

    /// What the error says, for the client.
    pub fn message(&self) -> String {
        self.shape().message
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        self.shape().status
    }

    /// The stable machine-readable code, for logs and usage records.
    pub fn code(&self) -> String {
        let shape = self.shape();
        match (shape.code, self) {
            (Some(code), _) => code.to_owned(),
            (None, GatewayError::Upstream(UpstreamError::OpenAi { error, .. })) => error
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("upstream_error")
                .to_owned(),
            (None, _) => "error".to_owned(),
        }
    }

    /// The OpenAI-shaped body.
    pub fn body(&self) -> Value {
        let shape = self.shape();
        let code = match (shape.code, self) {
            (Some(c), _) => Value::from(c),
            // An upstream OpenAI error keeps its own code, whatever its type.
            (None, GatewayError::Upstream(UpstreamError::OpenAi { error, .. })) => {
                error.get("code").cloned().unwrap_or(Value::Null)
            }
            (None, _) => Value::Null,
        };
        let kind = match self {
            GatewayError::Upstream(UpstreamError::OpenAi { error, .. }) => error
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or(shape.kind)
                .to_owned(),
            _ => shape.kind.to_owned(),
        };
        json!({"error": {"message": shape.message, "type": kind, "param": shape.param, "code": code}})
    }
}

/// Client-supplied text echoed in a message: cut long, drop control characters.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}

/// " for model m" for a key's limit on one model, else nothing.
fn on_model(model: Option<&str>) -> String {
    model.map_or_else(String::new, |m| format!(" for model {m}"))
}

/// ": it resets in 3h 20m" for a refusal whose period ends, else nothing.
fn resets_text(resets_in_ms: Option<u64>) -> String {
    resets_in_ms.map_or_else(String::new, |ms| {
        format!("; it resets in {}", crate::calendar::format_duration(ms))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_openai_shape() {
        let errors: Vec<GatewayError> = vec![
            AuthError::Missing.into(),
            AuthError::IpNotAllowed.into(),
            LimitError::QuotaExceeded { resets_in_ms: None }.into(),
            LimitError::RateLimited {
                limit: 3,
                retry_after_ms: 1500,
                reset_ms: 2000,
                model: None,
            }
            .into(),
            RequestError::BodyTooLarge { limit: 10 }.into(),
            RequestError::BodyTimeout { secs: 30 }.into(),
            RequestError::ModelNotFound("x\r\nInjected: 1".into()).into(),
            UpstreamError::Connect {
                detail: "http://10.0.0.1:1234".into(),
            }
            .into(),
            UpstreamError::Timeout.into(),
            StoreError::Unavailable("SELECT * FROM api_keys".into()).into(),
        ];
        for e in errors {
            let body = e.body();
            let err = &body["error"];
            assert!(err["message"].is_string(), "{body}");
            assert!(err["type"].is_string(), "{body}");
            assert!(
                err.get("param").is_some() && err.get("code").is_some(),
                "{body}"
            );
            let text = body.to_string();
            assert!(
                !text.contains("10.0.0.1") && !text.contains("SELECT"),
                "{text}"
            );
            assert!(!text.contains('\r'), "{text}");
        }
    }

    #[test]
    fn statuses_match_openai() {
        assert_eq!(GatewayError::from(AuthError::Invalid).status(), 401);
        assert_eq!(
            GatewayError::from(LimitError::QuotaExceeded { resets_in_ms: None }).status(),
            429
        );
        assert_eq!(
            GatewayError::from(LimitError::QuotaExceeded { resets_in_ms: None }).body()["error"]["code"],
            "insufficient_quota"
        );
        assert_eq!(
            GatewayError::from(UpstreamError::Connect {
                detail: String::new()
            })
            .status(),
            502
        );
        assert_eq!(GatewayError::from(UpstreamError::Timeout).status(), 504);
    }

    #[test]
    fn upstream_openai_error_passes_through() {
        let e = GatewayError::from(UpstreamError::OpenAi {
            status: 400,
            error: json!({"message": "context too long", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}),
            retry_after_s: None,
        });
        assert_eq!(e.status(), 400);
        let b = e.body();
        assert_eq!(b["error"]["code"], "context_length_exceeded");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert_eq!(b["error"]["param"], "messages");
    }
}
