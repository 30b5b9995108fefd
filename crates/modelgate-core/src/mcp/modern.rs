//! The stateless era of MCP (2026-07-28): no handshake and no session;
//! every request carries its protocol version and the client's
//! capabilities in `params._meta`, and mirrors its method (and the tool,
//! prompt or resource it names) in headers that intermediaries route on.
//! Whoever reads the body must hold those headers to it, or a proxy could
//! be routed on one tool while the server runs another.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::jsonrpc;

/// The modern protocol version served (both ways).
pub const MODERN: &str = "2026-07-28";
/// `_meta` key of the request's protocol version.
pub const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities.
pub const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version.
pub const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key of the server's name and version, on results.
pub const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";
/// The header mirroring the method.
pub const METHOD_HEADER: &str = "mcp-method";
/// The header mirroring the name a method acts on.
pub const NAME_HEADER: &str = "mcp-name";
/// The prefix of the headers mirroring a tool's arguments.
pub const PARAM_HEADER_PREFIX: &str = "mcp-param-";
/// A routing header's header-body mismatch.
pub const HEADER_MISMATCH: i64 = -32020;
/// A protocol version the receiver does not serve.
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// The params member whose value `Mcp-Name` mirrors, for the methods that
/// name something.
pub fn name_param(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// What a request's routing headers say (each `None` when absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct Routing<'a> {
    /// `MCP-Protocol-Version`.
    pub version: Option<&'a str>,
    /// `Mcp-Method`.
    pub method: Option<&'a str>,
    /// `Mcp-Name`, as sent (possibly base64-wrapped).
    pub name: Option<&'a str>,
    /// A routing header that came more than once: first-copy and
    /// last-copy readers would disagree, so it is refused.
    pub duplicated: Option<&'static str>,
}

/// Why a modern request is refused: a JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The JSON-RPC code.
    pub code: i64,
    /// For the client.
    pub message: String,
    /// `error.data`, when the code defines one.
    pub data: Option<Value>,
}

impl Rejection {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The error answer to `id`.
    pub fn answer(&self, id: &Value) -> Value {
        let mut body = jsonrpc::error(id, self.code, &self.message);
        if let Some(data) = &self.data {
            body["error"]["data"] = data.clone();
        }
        body
    }
}

/// The refusal of a version not in `served`.
pub fn unsupported(requested: &str, served: &[&str]) -> Rejection {
    Rejection {
        data: Some(json!({"supported": served, "requested": requested})),
        ..Rejection::new(UNSUPPORTED_VERSION, "Unsupported protocol version.")
    }
}

/// Hold a modern request to its envelope and its headers, in the spec's
/// order (the envelope, then header against body, then the version), and
/// answer the version it asks for.
pub fn check(
    routing: &Routing<'_>,
    method: &str,
    params: &Map<String, Value>,
    served: &[&str],
) -> Result<String, Rejection> {
    if let Some(header) = routing.duplicated {
        return Err(Rejection::new(
            HEADER_MISMATCH,
            format!("The {header} header appears more than once."),
        ));
    }
    let meta = params.get("_meta").and_then(Value::as_object);
    let (Some(version), true) = (
        meta.and_then(|m| m.get(VERSION_KEY)),
        meta.is_some_and(|m| m.contains_key(CAPABILITIES_KEY)),
    ) else {
        return Err(Rejection::new(
            jsonrpc::INVALID_PARAMS,
            format!("params._meta must carry '{VERSION_KEY}' and '{CAPABILITIES_KEY}'."),
        ));
    };
    if routing.version.is_none_or(|h| version.as_str() != Some(h)) {
        return Err(Rejection::new(
            HEADER_MISMATCH,
            "The MCP-Protocol-Version header does not match params._meta.",
        ));
    }
    if routing.method != Some(method) {
        return Err(Rejection::new(
            HEADER_MISMATCH,
            "The Mcp-Method header does not match the method.",
        ));
    }
    if let Some(member) = name_param(method)
        && let Some(body) = params.get(member).filter(|v| !v.is_null())
        && routing.name.and_then(decode_header_value).as_deref() != body.as_str()
    {
        return Err(Rejection::new(
            HEADER_MISMATCH,
            format!("The Mcp-Name header does not match params.{member}."),
        ));
    }
    let version = version.as_str().unwrap_or_default();
    if served.contains(&version) {
        Ok(version.to_owned())
    } else {
        Err(unsupported(version, served))
    }
}

/// The HTTP status of a modern error answer, by its code (the spec's
/// table; anything else is a 200 carrying the error).
pub fn http_status(code: i64) -> u16 {
    match code {
        jsonrpc::PARSE_ERROR
        | jsonrpc::INVALID_REQUEST
        | jsonrpc::INVALID_PARAMS
        | HEADER_MISMATCH
        | UNSUPPORTED_VERSION => 400,
        jsonrpc::METHOD_NOT_FOUND => 404,
        _ => 200,
    }
}

/// A header value as the client meant it: verbatim, or the UTF-8 inside a
/// `=?base64?…?=` wrapper (`None` if the wrapper is malformed, so that it
/// never matches a body by accident).
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    let bytes = STANDARD.decode(payload).ok()?;
    // Only the canonical encoding, as the encoder writes it.
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// A value for a header: verbatim when it is printable ASCII without edge
/// whitespace (and does not look wrapped), else base64-wrapped.
pub fn encode_header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        value.to_owned()
    } else {
        format!("=?base64?{}?=", STANDARD.encode(value))
    }
}

/// A request to send to a server at `version`, with the headers it needs:
/// the client's own envelope keys are dropped (the gateway is the client
/// here); at the modern version the gateway's envelope is added, offering
/// of the client's capabilities those whose requests for input go back to
/// it (a result that asks for input reaches the client as it is), and the
/// method and name mirrored; `traceparent`, when given, goes in `_meta`
/// (how the trace crosses transports without HTTP).
pub fn outgoing(
    body: &Value,
    version: &str,
    traceparent: Option<&str>,
) -> (Value, Vec<(&'static str, String)>) {
    let mut body = body.clone();
    let mut headers = Vec::new();
    let Some(message) = body.as_object_mut() else {
        return (body, headers);
    };
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(Value::Object(params)) = message.get_mut("params") else {
        return (body, headers);
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        let offered = match meta.get(CAPABILITIES_KEY) {
            Some(Value::Object(c)) => super::relay::relayable(c),
            _ => Map::new(),
        };
        // The client's log level (and anything else it asks of the
        // server) goes on; only the client's own envelope stays here.
        meta.retain(|k, _| ![VERSION_KEY, CAPABILITIES_KEY, CLIENT_INFO_KEY].contains(&k.as_str()));
        if let Some(tp) = traceparent {
            meta.insert("traceparent".into(), Value::String(tp.to_owned()));
        }
        if version == MODERN {
            meta.insert(VERSION_KEY.into(), Value::String(MODERN.into()));
            meta.insert(CAPABILITIES_KEY.into(), Value::Object(offered));
            meta.insert(
                CLIENT_INFO_KEY.into(),
                json!({"name": "modelgate", "version": env!("CARGO_PKG_VERSION")}),
            );
        }
    }
    if params
        .get("_meta")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        params.remove("_meta");
    }
    if let (Some(method), true) = (method, version == MODERN) {
        if let Some(name) = name_param(&method).and_then(|m| params.get(m)?.as_str()) {
            headers.push((NAME_HEADER, encode_header_value(name)));
        }
        headers.push((METHOD_HEADER, method));
    }
    (body, headers)
}

/// A result as the modern era requires it: `resultType` on every one.
pub fn complete(result: &mut Value) {
    if let Some(r) = result.as_object_mut() {
        r.entry("resultType")
            .or_insert_with(|| Value::String("complete".into()));
    }
}

#[cfg(test)]
mod tests;
