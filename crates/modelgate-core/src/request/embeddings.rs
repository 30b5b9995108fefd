//! `/v1/embeddings`: the request's checks.

use serde_json::{Map, Value};

use super::{Endpoint, ProxyRequest, opt_int, opt_model, wrong_type};
use crate::error::RequestError;

/// Most inputs in one request (OpenAI's limit).
const MAX_INPUTS: usize = 2048;
/// Largest `dimensions` accepted.
const MAX_DIMENSIONS: u64 = 1 << 16;

/// Parse and check an embeddings request. Nothing is generated, so the
/// reservation is the input alone.
pub(super) fn parse(body: Map<String, Value>) -> Result<ProxyRequest, RequestError> {
    let model = opt_model(&body)?;
    let prompt_bound = input_bound(body.get("input"))?;
    match body.get("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "float" || f == "base64" => {}
        Some(_) => {
            return Err(RequestError::invalid(
                "'encoding_format' must be 'float' or 'base64'.",
                Some("encoding_format"),
            ));
        }
    }
    opt_int(&body, "dimensions", 1, MAX_DIMENSIONS)?;
    Ok(ProxyRequest {
        endpoint: Endpoint::Embeddings,
        body,
        model,
        stream: false,
        include_usage: false,
        max_tokens: None,
        choices: 1,
        prompt_bound,
    })
}

/// An upper bound of the input's tokens: UTF-8 bytes of text, one per
/// token id.
fn input_bound(input: Option<&Value>) -> Result<u64, RequestError> {
    let bad = || {
        wrong_type(
            "input",
            "a non-empty string, an array of strings, an array of token ids, or an array of token arrays",
        )
    };
    let text = |s: &str| {
        if s.is_empty() {
            Err(RequestError::invalid(
                "'input' must not contain empty strings.",
                Some("input"),
            ))
        } else {
            Ok(s.len() as u64)
        }
    };
    match input {
        None | Some(Value::Null) => Err(RequestError::invalid(
            "Missing required parameter: 'input'.",
            Some("input"),
        )),
        Some(Value::String(s)) => text(s),
        Some(Value::Array(items)) if items.is_empty() || items.len() > MAX_INPUTS => {
            Err(RequestError::invalid(
                format!("'input' must hold 1 to {MAX_INPUTS} items."),
                Some("input"),
            ))
        }
        Some(Value::Array(items)) => {
            if items.iter().all(Value::is_u64) {
                return Ok(items.len() as u64);
            }
            let mut total = 0u64;
            for item in items {
                total += match item {
                    Value::String(s) => text(s)?,
                    Value::Array(t) if !t.is_empty() && t.iter().all(Value::is_u64) => {
                        t.len() as u64
                    }
                    _ => return Err(bad()),
                };
            }
            Ok(total)
        }
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: &str) -> Result<ProxyRequest, RequestError> {
        super::super::parse(Endpoint::Embeddings, body.as_bytes())
    }

    fn param(r: Result<ProxyRequest, RequestError>) -> Option<String> {
        match r {
            Err(RequestError::Invalid { param, .. }) => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_input_form_is_bounded() {
        let b = |input: &str| {
            parsed(&format!(r#"{{"model":"e","input":{input}}}"#))
                .unwrap()
                .prompt_bound
        };
        assert_eq!(b(r#""hello""#), 5);
        assert_eq!(b(r#"["ab","cde"]"#), 5);
        assert_eq!(b("[1,2,3]"), 3);
        assert_eq!(b("[[1,2],[3]]"), 3);
        let r = parsed(r#"{"input":"x","encoding_format":"base64","dimensions":8}"#).unwrap();
        assert_eq!((r.max_tokens, r.stream), (None, false));
    }

    #[test]
    fn bad_inputs_name_the_parameter() {
        for body in [
            r#"{"model":"e"}"#,
            r#"{"model":"e","input":""}"#,
            r#"{"model":"e","input":[]}"#,
            r#"{"model":"e","input":["a",""]}"#,
            r#"{"model":"e","input":[1,"a"]}"#,
            r#"{"model":"e","input":[[]]}"#,
            r#"{"model":"e","input":[-1]}"#,
            r#"{"model":"e","input":{"a":1}}"#,
        ] {
            assert_eq!(param(parsed(body)).as_deref(), Some("input"), "{body}");
        }
        let many = format!(r#"{{"input":[{}]}}"#, vec!["\"a\""; 2049].join(","));
        assert_eq!(param(parsed(&many)).as_deref(), Some("input"));
        assert_eq!(
            param(parsed(r#"{"input":"a","encoding_format":"bytes"}"#)).as_deref(),
            Some("encoding_format")
        );
        assert_eq!(
            param(parsed(r#"{"input":"a","dimensions":0}"#)).as_deref(),
            Some("dimensions")
        );
    }
}
