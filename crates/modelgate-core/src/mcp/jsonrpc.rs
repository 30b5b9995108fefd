//! JSON-RPC 2.0 as MCP uses it: one message a POST body (batches were
//! removed in 2025-06-18), requests with a string or integer id,
//! notifications without one, and the error codes the gateway answers with.

use serde_json::{Map, Value, json};

/// Parse error: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a valid JSON-RPC request (a batch, a `null` id, no method).
pub const INVALID_REQUEST: i64 = -32600;
/// No such method (or not served through the gateway).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad params (an unknown tool, a missing name).
pub const INVALID_PARAMS: i64 = -32602;
/// The gateway or an upstream failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined: the request was refused (key, limit, session).
pub const REFUSED: i64 = -32001;

/// A message from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request: an answer is due under `id`.
    Request {
        /// The client's id, as it sent it (string or integer).
        id: Value,
        /// The method.
        method: String,
        /// The params object (empty when absent).
        params: Map<String, Value>,
    },
    /// A notification: no answer.
    Notification {
        /// The method.
        method: String,
        /// The params object.
        params: Map<String, Value>,
    },
    /// A response to a request the server sent (one the gateway relayed).
    Response {
        /// The id it answers.
        id: Value,
        /// The message as it came.
        message: Value,
    },
}

/// Why a body is not one JSON-RPC message: the code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// [`PARSE_ERROR`] or [`INVALID_REQUEST`].
    pub code: i64,
    /// For the client.
    pub message: String,
}

fn malformed(code: i64, message: impl Into<String>) -> Malformed {
    Malformed {
        code,
        message: message.into(),
    }
}

/// Read one message from a POST body.
pub fn parse(body: &[u8]) -> Result<Message, Malformed> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(PARSE_ERROR, format!("Parse error: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(malformed(
            INVALID_REQUEST,
            "The body must be one JSON-RPC message (batches are not supported).",
        ));
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(malformed(INVALID_REQUEST, "'jsonrpc' must be \"2.0\"."));
    }
    let params = match obj.remove("params") {
        None => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => return Err(malformed(INVALID_REQUEST, "'params' must be an object.")),
    };
    let method = match obj.remove("method") {
        Some(Value::String(m)) => Some(m),
        None => None,
        Some(_) => return Err(malformed(INVALID_REQUEST, "'method' must be a string.")),
    };
    if method.is_none() && (obj.contains_key("result") || obj.contains_key("error")) {
        obj.insert("jsonrpc".into(), "2.0".into());
        let id = obj.get("id").cloned().unwrap_or(Value::Null);
        return Ok(Message::Response {
            id,
            message: Value::Object(obj),
        });
    }
    let id = obj.remove("id");
    match (method, id) {
        (Some(method), None) => Ok(Message::Notification { method, params }),
        (Some(method), Some(id @ (Value::String(_) | Value::Number(_)))) => {
            Ok(Message::Request { id, method, params })
        }
        (Some(_), Some(_)) => Err(malformed(
            INVALID_REQUEST,
            "'id' must be a string or an integer.",
        )),
        (None, _) => Err(malformed(INVALID_REQUEST, "'method' is missing.")),
    }
}

/// A successful answer to `id`.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error answer to `id` (`null` when the request could not be read).
pub fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        let m = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#).unwrap();
        assert_eq!(
            m,
            Message::Request {
                id: json!(7),
                method: "tools/list".into(),
                params: Map::new()
            }
        );
        let n = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(
            matches!(n, Message::Notification { method, .. } if method == "notifications/initialized")
        );
        let r = parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        let message = json!({"jsonrpc": "2.0", "id": "a", "result": {}});
        assert_eq!(
            r,
            Message::Response {
                id: json!("a"),
                message
            }
        );
    }

    #[test]
    fn what_is_not_one_message_gets_the_code_the_spec_gives() {
        let code = |b: &[u8]| parse(b).unwrap_err().code;
        assert_eq!(code(b"{"), PARSE_ERROR);
        assert_eq!(
            code(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":3}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#),
            INVALID_REQUEST
        );
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1}"#), INVALID_REQUEST);
    }

    #[test]
    fn answers_carry_the_id_as_it_came() {
        assert_eq!(
            error(&json!("x-1"), METHOD_NOT_FOUND, "no"),
            json!({"jsonrpc": "2.0", "id": "x-1", "error": {"code": -32601, "message": "no"}})
        );
        assert_eq!(result(&json!(3), json!({}))["id"], 3);
    }
}
