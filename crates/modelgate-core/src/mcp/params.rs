//! The `Mcp-Param-*` headers of a stateless-era `tools/call`: a tool whose
//! input schema marks a property `x-mcp-header: Token` has that argument
//! mirrored in `Mcp-Param-Token`, so intermediaries can route on it, and a
//! server of that era refuses a call whose headers and body disagree
//! (`-32020`), a missing header included. A handshake-era client sends
//! none, so the gateway derives them for it.

use serde_json::Value;

use super::modern::{PARAM_HEADER_PREFIX, encode_header_value};

/// The annotation naming a property's header.
const ANNOTATION: &str = "x-mcp-header";
/// How deep nested `properties` are followed.
const MAX_DEPTH: usize = 8;
/// The types a mirrored property may have.
const MIRRORED: [&str; 3] = ["string", "integer", "boolean"];

/// The headers (lower-case names) a call with `arguments` of a tool with
/// `schema` carries: one per annotated property reached through
/// `properties` alone whose argument is present and a scalar.
pub fn derive(schema: &Value, arguments: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(schema, Some(arguments), 0, &mut out);
    out
}

fn walk(schema: &Value, argument: Option<&Value>, depth: usize, out: &mut Vec<(String, String)>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    if depth >= MAX_DEPTH {
        return;
    }
    for (name, property) in properties {
        let value = argument.and_then(|a| a.get(name));
        let token = property.get(ANNOTATION).and_then(Value::as_str);
        let kind = property.get("type").and_then(Value::as_str);
        if let (Some(token), Some(kind), Some(value)) = (token, kind, value)
            && is_token(token)
            && MIRRORED.contains(&kind)
            && let Some(rendered) = render(value)
        {
            let header = format!("{PARAM_HEADER_PREFIX}{}", token.to_ascii_lowercase());
            out.push((header, encode_header_value(&rendered)));
        }
        walk(property, value, depth + 1, out);
    }
}

/// An argument as its header carries it; `None` for one that is not a
/// scalar.
fn render(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Whether `token` may follow `Mcp-Param-` in a header's name (RFC 9110).
fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn annotated_scalars_are_mirrored_and_nothing_else() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "limit": {"type": "integer", "x-mcp-header": "Limit"},
            "dry": {"type": "boolean", "x-mcp-header": "Dry"},
            "ratio": {"type": "number", "x-mcp-header": "Ratio"},
            "note": {"type": "string"},
            "bad": {"type": "string", "x-mcp-header": "Not A Token"},
            "target": {"type": "object", "properties": {
                "zone": {"type": "string", "x-mcp-header": "Zone"}}},
            "missing": {"type": "string", "x-mcp-header": "Missing"},
        }});
        let arguments = json!({"region": "eu-west", "limit": 5, "dry": false, "ratio": 0.5,
            "note": "x", "bad": "y", "target": {"zone": "Zürich"}});
        let mut headers = derive(&schema, &arguments);
        headers.sort();
        assert_eq!(
            headers,
            vec![
                ("mcp-param-dry".to_owned(), "false".to_owned()),
                ("mcp-param-limit".to_owned(), "5".to_owned()),
                ("mcp-param-region".to_owned(), "eu-west".to_owned()),
                ("mcp-param-zone".to_owned(), encode_header_value("Zürich")),
            ]
        );
        assert!(derive(&schema, &json!({})).is_empty());
        assert!(derive(&json!({"type": "object"}), &arguments).is_empty());
        assert!(derive(&schema, &json!({"region": ["a"]})).is_empty());
    }
}
