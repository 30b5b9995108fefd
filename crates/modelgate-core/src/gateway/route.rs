//! The route table: every method and path the gateway answers, decided
//! once from the request head. The head check (credentials before the body)
//! and the dispatcher both read it, so a route cannot need a key in one and
//! nothing in the other; a request for an unknown route, or with the wrong
//! method, is answered from its head, and a body is read only for a route
//! that takes one.

use http::Method;

use crate::error::RequestError;
use crate::request::Endpoint;

/// A route of the gateway's (the admin panel's static files are the
/// runtime's, not the core's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`, `GET /v1/health`.
    Health,
    /// `POST` to a client API: chat, completions, embeddings, Responses,
    /// Messages.
    Proxy(Endpoint),
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `GET`/`DELETE /v1/responses/{id}`, or `GET .../input_items`.
    StoredResponse {
        /// The id, percent-decoded.
        id: String,
        /// The input items rather than the Response.
        input_items: bool,
    },
    /// `GET /v1/models`.
    Models,
    /// `GET /v1/models/{id}` (ids may contain `/`).
    Model(String),
    /// `GET /metrics`.
    Metrics,
    /// `/admin/api/...`, any method (the admin API answers 404/405 itself).
    Admin,
    /// `POST`/`GET`/`DELETE /mcp` (every server a key may use) or
    /// `/mcp/{server}` (that one): the MCP gateway.
    Mcp {
        /// The one server asked for.
        server: Option<String>,
    },
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Anybody.
    None,
    /// A client key.
    ClientKey,
    /// The admin key, or a key with `admin`.
    Admin,
}

impl Route {
    /// Find the route for `method` and `path`: a 404 for an unknown path,
    /// a 405 for a known one asked with the wrong method.
    pub fn resolve(method: &Method, path: &str) -> Result<Self, RequestError> {
        let trimmed = path.trim_end_matches('/');
        let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
        let get = method == Method::GET;
        let post = method == Method::POST;
        let route = match segments.as_slice() {
            ["health"] | ["v1", "health"] => get.then_some(Self::Health),
            ["v1", "chat", "completions"] => post.then_some(Self::Proxy(Endpoint::Chat)),
            ["v1", "completions"] => post.then_some(Self::Proxy(Endpoint::Completion)),
            ["v1", "embeddings"] => post.then_some(Self::Proxy(Endpoint::Embeddings)),
            ["v1", "responses"] => post.then_some(Self::Proxy(Endpoint::Responses)),
            ["v1", "messages"] => post.then_some(Self::Proxy(Endpoint::Messages)),
            ["v1", "messages", "count_tokens"] => post.then_some(Self::CountTokens),
            ["v1", "responses", id] => {
                (get || method == Method::DELETE).then(|| Self::StoredResponse {
                    id: percent_decode(id),
                    input_items: false,
                })
            }
            ["v1", "responses", id, "input_items"] => get.then(|| Self::StoredResponse {
                id: percent_decode(id),
                input_items: true,
            }),
            ["v1", "models"] => get.then_some(Self::Models),
            // Model names may contain '/', e.g. "Qwen/Qwen2.5-0.5B".
            ["v1", "models", id @ ..] => get.then(|| Self::Model(percent_decode(&id.join("/")))),
            ["metrics"] => get.then_some(Self::Metrics),
            ["admin", "api", ..] => Some(Self::Admin),
            // GET: a session's standing event stream.
            ["mcp"] => {
                (post || get || method == Method::DELETE).then_some(Self::Mcp { server: None })
            }
            ["mcp", server] => (post || get || method == Method::DELETE).then(|| Self::Mcp {
                server: Some(percent_decode(server)),
            }),
            _ => return Err(RequestError::NotFound(format!("Route {path}"))),
        };
        route.ok_or(RequestError::MethodNotAllowed)
    }

    /// The credential the route needs, checked from the head.
    pub fn credential(&self) -> Credential {
        match self {
            Self::Health => Credential::None,
            Self::Proxy(_)
            | Self::CountTokens
            | Self::StoredResponse { .. }
            | Self::Models
            | Self::Model(_)
            | Self::Mcp { .. } => Credential::ClientKey,
            Self::Metrics | Self::Admin => Credential::Admin,
        }
    }

    /// Whether the route reads a body (asked with `method`): the client
    /// APIs and the admin API's writes. Any other body is never read.
    pub fn takes_body(&self, method: &Method) -> bool {
        match self {
            Self::Proxy(_) | Self::CountTokens => true,
            Self::Mcp { .. } => method == Method::POST,
            Self::Admin => [Method::POST, Method::PUT, Method::PATCH].contains(method),
            _ => false,
        }
    }
}

/// The shape of a request's errors: the shape of the API it came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorShape {
    /// `{"error":{"message","type","param","code"}}`.
    #[default]
    OpenAi,
    /// `{"type":"error","error":{"type","message"},"request_id"}`.
    Anthropic,
    /// JSON-RPC's `{"jsonrpc":"2.0","id":null,"error":{"code","message"}}`
    /// (the MCP routes).
    JsonRpc,
}

impl ErrorShape {
    /// The shape for a request for `route` with `headers`: Anthropic's for
    /// the Messages routes, and for the model list asked by an Anthropic
    /// client (which sends `anthropic-version`).
    pub fn of(route: Option<&Route>, headers: &http::HeaderMap) -> Self {
        match route {
            Some(Route::Proxy(Endpoint::Messages) | Route::CountTokens) => Self::Anthropic,
            Some(Route::Mcp { .. }) => Self::JsonRpc,
            Some(Route::Models | Route::Model(_)) if headers.contains_key(ANTHROPIC_VERSION) => {
                Self::Anthropic
            }
            _ => Self::OpenAi,
        }
    }
}

/// The header every Anthropic client sends.
pub(super) const ANTHROPIC_VERSION: &str = "anthropic-version";

/// The headers of a Messages request that an upstream serving Messages
/// gets as they came: the API version and the betas (never allow-listed: a
/// feature is a body field and its beta together).
pub(super) fn anthropic_headers(
    headers: &http::HeaderMap,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    [ANTHROPIC_VERSION, "anthropic-beta"]
        .into_iter()
        .filter_map(|name| {
            Some((
                http::HeaderName::from_static(name),
                headers.get(name)?.clone(),
            ))
        })
        .collect()
}

/// Decode `%XX` escapes in a path segment (invalid escapes stay as they
/// are; `+` is a plus in a path).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API page's list of endpoints (`docs/api.md`) and the table agree:
    /// every route it names resolves with the method it names, and every
    /// route of the table is named there.
    #[test]
    fn the_api_page_lists_every_route_and_only_routes() {
        let page = include_str!("../../../../docs/api.md");
        let table = page
            .split("| route | what |")
            .nth(1)
            .and_then(|t| t.split("\n\n").next())
            .expect("the endpoints table");
        let mut named = Vec::new();
        for row in table.lines().filter_map(|l| l.strip_prefix("| `")) {
            let cell = row.split(" |").next().unwrap_or_default();
            let mut methods = Vec::new();
            for span in cell
                .split('`')
                .filter(|s| !s.trim_matches([',', ' ']).is_empty())
            {
                match span.split_once(' ') {
                    Some((method, path)) => {
                        methods.push(method);
                        for m in methods.drain(..) {
                            named.push((m.to_owned(), path.to_owned()));
                        }
                    }
                    None if span.starts_with('/') => named.push(("GET".into(), span.to_owned())),
                    None => methods.push(span),
                }
            }
        }
        let concrete = |path: &str| path.replace("{id}", "x").replace("...", "keys");
        for (method, path) in &named {
            let m: Method = method.parse().unwrap();
            assert!(
                Route::resolve(&m, &concrete(path)).is_ok(),
                "docs/api.md names {method} {path}, which the table does not answer"
            );
        }
        let routes = [
            Route::Health,
            Route::Proxy(Endpoint::Chat),
            Route::Proxy(Endpoint::Completion),
            Route::Proxy(Endpoint::Embeddings),
            Route::Proxy(Endpoint::Responses),
            Route::Proxy(Endpoint::Messages),
            Route::CountTokens,
            Route::StoredResponse {
                id: "x".into(),
                input_items: false,
            },
            Route::StoredResponse {
                id: "x".into(),
                input_items: true,
            },
            Route::Models,
            Route::Model("x".into()),
            Route::Metrics,
            Route::Admin,
            Route::Mcp { server: None },
            Route::Mcp {
                server: Some("{server}".into()),
            },
        ];
        for route in routes {
            let listed = named.iter().any(|(method, path)| {
                Route::resolve(&method.parse().unwrap(), &concrete(path)).as_ref() == Ok(&route)
            });
            assert!(listed, "docs/api.md does not list {route:?}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
        assert_eq!(percent_decode("a+b%2Bc"), "a+b+c");
    }

    /// Every row of the table: its credential, whether it reads a body,
    /// and what the wrong method and an unknown path get.
    #[test]
    fn every_route_says_who_may_call_it_and_whether_it_reads_a_body() {
        use Credential as C;
        let rows: &[(&str, &str, C, bool)] = &[
            ("GET", "/health", C::None, false),
            ("GET", "/v1/health/", C::None, false),
            ("POST", "/v1/chat/completions", C::ClientKey, true),
            ("POST", "/v1/completions", C::ClientKey, true),
            ("POST", "/v1/embeddings", C::ClientKey, true),
            ("POST", "/v1/responses", C::ClientKey, true),
            ("POST", "/v1/messages", C::ClientKey, true),
            ("POST", "/v1/messages/count_tokens", C::ClientKey, true),
            ("GET", "/v1/responses/resp_1", C::ClientKey, false),
            ("DELETE", "/v1/responses/resp_1", C::ClientKey, false),
            (
                "GET",
                "/v1/responses/resp_1/input_items",
                C::ClientKey,
                false,
            ),
            ("GET", "/v1/models", C::ClientKey, false),
            ("GET", "/v1/models/Qwen/Qwen2.5", C::ClientKey, false),
            ("GET", "/metrics", C::Admin, false),
            ("GET", "/admin/api/keys", C::Admin, false),
            ("DELETE", "/admin/api/keys/k", C::Admin, false),
            ("POST", "/admin/api/keys", C::Admin, true),
            ("PATCH", "/admin/api/models/m", C::Admin, true),
            ("POST", "/mcp", C::ClientKey, true),
            ("DELETE", "/mcp/", C::ClientKey, false),
            ("POST", "/mcp/github", C::ClientKey, true),
            ("DELETE", "/mcp/github", C::ClientKey, false),
            ("GET", "/mcp", C::ClientKey, false),
        ];
        for (method, path, credential, body) in rows {
            let m: Method = method.parse().unwrap();
            let route = Route::resolve(&m, path).unwrap();
            assert_eq!(route.credential(), *credential, "{method} {path}");
            assert_eq!(route.takes_body(&m), *body, "{method} {path}");
        }
        let wrong = [
            ("PUT", "/v1/chat/completions"),
            ("GET", "/v1/embeddings"),
            ("POST", "/v1/models"),
            ("POST", "/health"),
            ("PUT", "/v1/responses/r"),
            ("POST", "/v1/responses/r/input_items"),
            ("DELETE", "/metrics"),
            ("GET", "/v1/messages"),
            ("PUT", "/mcp/github"),
        ];
        for (method, path) in wrong {
            let m: Method = method.parse().unwrap();
            assert_eq!(
                Route::resolve(&m, path),
                Err(RequestError::MethodNotAllowed),
                "{method} {path}"
            );
        }
        for path in [
            "/v1/nope",
            "/v1",
            "/",
            "/v1/chat",
            "/admin/apix",
            "/mcp/a/b",
        ] {
            assert!(matches!(
                Route::resolve(&Method::POST, path),
                Err(RequestError::NotFound(_))
            ));
        }
        assert_eq!(
            Route::resolve(&Method::GET, "/v1/models/a%2Fb"),
            Ok(Route::Model("a/b".into()))
        );
    }
}
