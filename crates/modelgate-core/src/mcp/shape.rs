//! The shape of a tool call's arguments, for its usage record: each
//! name with its JSON type, nested objects and arrays down to a depth,
//! and never a value (`{"path":"string","limit":"integer"}`). What a
//! client called a tool with can be audited without keeping what it sent.

use serde_json::{Map, Value};

/// Deepest level described; below it an object or array is its type.
const DEPTH: usize = 4;
/// Most names described in one object; the rest are counted.
const NAMES: usize = 32;
/// Longest name kept whole.
const NAME_CHARS: usize = 64;
/// Longest shape kept: a larger one is described less deeply.
pub const MAX_CHARS: usize = 1024;

/// The shape of `arguments`, at most [`MAX_CHARS`] long.
pub fn shape(arguments: &Value) -> String {
    (0..=DEPTH)
        .rev()
        .map(|depth| of(arguments, depth).to_string())
        .find(|s| s.len() <= MAX_CHARS)
        .unwrap_or_else(|| "\"object\"".into())
}

fn of(v: &Value, depth: usize) -> Value {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "boolean".into(),
        Value::Number(n) if n.is_f64() => "number".into(),
        Value::Number(_) => "integer".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) | Value::Object(_) if depth == 0 => {
            if v.is_array() { "array" } else { "object" }.into()
        }
        Value::Array(items) => {
            // The distinct shapes of its items, in order of appearance.
            let mut kinds: Vec<Value> = Vec::new();
            for item in items {
                let kind = of(item, depth - 1);
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
                if kinds.len() == NAMES {
                    break;
                }
            }
            Value::Array(kinds)
        }
        Value::Object(fields) => {
            let mut out = Map::new();
            for (name, value) in fields.iter().take(NAMES) {
                out.insert(short(name), of(value, depth - 1));
            }
            if fields.len() > NAMES {
                out.insert(
                    "...".into(),
                    format!("{} more", fields.len() - NAMES).into(),
                );
            }
            Value::Object(out)
        }
    }
}

fn short(name: &str) -> String {
    match name.char_indices().nth(NAME_CHARS) {
        Some((end, _)) => format!("{}...", &name[..end]),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_and_types_and_never_a_value() {
        let args = json!({
            "path": "/home/alice/.ssh/id_rsa", "limit": 10, "ratio": 0.5, "force": true,
            "note": null, "tags": ["a", "b", 3], "filter": {"owner": "sk-secret-value", "depth": 2},
        });
        let s = shape(&args);
        assert_eq!(
            serde_json::from_str::<Value>(&s).unwrap(),
            json!({
                "path": "string", "limit": "integer", "ratio": "number", "force": "boolean",
                "note": "null", "tags": ["string", "integer"],
                "filter": {"owner": "string", "depth": "integer"},
            })
        );
        for value in ["alice", "id_rsa", "sk-secret-value", "10", "0.5", "true"] {
            assert!(!s.contains(value), "{value} in {s}");
        }
        assert_eq!(shape(&json!({})), "{}");
        assert_eq!(shape(&json!("loose")), "\"string\"");
    }

    #[test]
    fn deep_wide_or_long_arguments_are_described_within_bounds() {
        let deep = json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}});
        assert_eq!(shape(&deep), r#"{"a":{"b":{"c":{"d":"object"}}}}"#);
        let wide: Map<String, Value> = (0..100).map(|i| (format!("k{i:03}"), json!(i))).collect();
        let s = shape(&Value::Object(wide));
        let v: Value = serde_json::from_str(&s).unwrap();
        assert!(s.len() <= MAX_CHARS);
        assert_eq!(v["..."], "68 more");
        let long = "x".repeat(5000);
        let s = shape(&json!({long.clone(): 1}));
        assert!(
            s.len() < 100 && s.contains("...") && !s.contains(&long),
            "{s}"
        );
        // Too large even shallow: described by its type alone.
        let huge: Map<String, Value> = (0..32)
            .map(|i| (format!("{i:02}{}", "y".repeat(70)), json!({"z": 1})))
            .collect();
        let s = shape(&Value::Object(huge));
        assert!(s.len() <= MAX_CHARS, "{}", s.len());
    }
}
