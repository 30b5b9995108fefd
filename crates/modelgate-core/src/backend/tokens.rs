//! Counting a prompt's tokens with the upstream's own tokenizer, for
//! `/v1/messages/count_tokens`: Anthropic counts a Messages request
//! itself; vLLM's `/tokenize` takes chat messages (and tools) and renders
//! its chat template; llama.cpp's server renders the template
//! (`/apply-template`) and then tokenizes the prompt (`/tokenize`). The
//! others have no tokenizer endpoint: the gateway estimates.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde_json::{Map, Value, json};

use super::{BackendKind, Target};
use crate::error::RequestError;

/// What an upstream's counting answer means.
#[derive(Debug, PartialEq, Eq)]
pub enum Counted {
    /// The prompt's tokens.
    Tokens(u64),
    /// Ask again with this body (llama.cpp: tokenize the rendered prompt).
    Tokenize(Value),
}

impl BackendKind {
    /// The first request of a token count, if this backend can count:
    /// `messages` is the Messages request (and `headers` its Anthropic
    /// headers), `chat` its chat translation.
    pub fn count_request(
        self,
        target: &Target<'_>,
        (messages, headers): (&Map<String, Value>, &[(HeaderName, HeaderValue)]),
        chat: &Map<String, Value>,
    ) -> Option<Result<http::Request<Bytes>, RequestError>> {
        let base = target.base_url.trim_end_matches('/');
        let root = base.strip_suffix("/v1").unwrap_or(base);
        let (url, body) = match self {
            Self::Anthropic => {
                let mut body = messages.clone();
                for k in [
                    "max_tokens",
                    "stream",
                    "temperature",
                    "top_p",
                    "top_k",
                    "stop_sequences",
                    "metadata",
                ] {
                    body.remove(k);
                }
                body.insert("model".into(), json!(target.model));
                (
                    format!("{root}/v1/messages/count_tokens"),
                    Value::Object(body),
                )
            }
            Self::Vllm => {
                let mut body = json!({"model": target.model, "messages": chat.get("messages")});
                if let Some(tools) = chat.get("tools") {
                    body["tools"] = tools.clone();
                }
                (format!("{root}/tokenize"), body)
            }
            Self::Llamacpp => (
                format!("{root}/apply-template"),
                json!({"messages": chat.get("messages")}),
            ),
            Self::Openai | Self::Api3 | Self::Ollama => return None,
        };
        Some(self.count_call(target, url, &body, headers))
    }

    /// The next request of a llama.cpp count (after [`Counted::Tokenize`]).
    pub fn tokenize_request(
        self,
        target: &Target<'_>,
        body: &Value,
    ) -> Result<http::Request<Bytes>, RequestError> {
        let base = target.base_url.trim_end_matches('/');
        let root = base.strip_suffix("/v1").unwrap_or(base);
        self.count_call(target, format!("{root}/tokenize"), body, &[])
    }

    fn count_call(
        self,
        target: &Target<'_>,
        url: String,
        body: &Value,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<http::Request<Bytes>, RequestError> {
        let bytes = Bytes::from(body.to_string());
        let mut req = self.request_to(Method::POST, target, url, bytes)?;
        if self == Self::Anthropic {
            for (name, value) in headers {
                req.headers_mut().insert(name.clone(), value.clone());
            }
        }
        Ok(req)
    }

    /// Read a counting answer; `None` if it is not one. Tools are counted
    /// apart for llama.cpp (its template endpoint takes none): `tools` is
    /// their JSON, tokenized with the prompt.
    pub fn read_count(self, body: &[u8], tools: Option<&Value>) -> Option<Counted> {
        let v: Value = serde_json::from_slice(body).ok()?;
        match self {
            Self::Anthropic => v.get("input_tokens")?.as_u64().map(Counted::Tokens),
            Self::Vllm => v.get("count")?.as_u64().map(Counted::Tokens),
            Self::Llamacpp => match (v.get("prompt"), v.get("tokens")) {
                (Some(Value::String(prompt)), _) => {
                    let mut content = prompt.clone();
                    if let Some(t) = tools {
                        content.push_str(&t.to_string());
                    }
                    Some(Counted::Tokenize(json!({"content": content})))
                }
                (_, Some(Value::Array(tokens))) => Some(Counted::Tokens(tokens.len() as u64)),
                _ => None,
            },
            Self::Openai | Self::Api3 | Self::Ollama => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target<'static> {
        Target {
            base_url: "http://up:8000/v1",
            model: "m-up",
            api_key: None,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn each_tokenizer_is_asked_in_its_own_words() {
        let messages = obj(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        );
        let chat = obj(
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}),
        );
        let beta = [(
            HeaderName::from_static("anthropic-beta"),
            HeaderValue::from_static("b-1"),
        )];
        let ask = |kind: BackendKind| {
            let req = kind
                .count_request(&target(), (&messages, &beta), &chat)
                .map(Result::unwrap)?;
            let body: Value = serde_json::from_slice(req.body()).unwrap();
            Some((
                req.uri().to_string(),
                body,
                req.headers().get("anthropic-beta").cloned(),
            ))
        };
        let (url, body, beta_sent) = ask(BackendKind::Anthropic).unwrap();
        assert_eq!(url, "http://up:8000/v1/messages/count_tokens");
        assert_eq!(
            body,
            json!({"model": "m-up", "messages": [{"role": "user", "content": "hi"}]})
        );
        assert_eq!(beta_sent.unwrap(), "b-1");
        let (url, body, beta_sent) = ask(BackendKind::Vllm).unwrap();
        assert_eq!(url, "http://up:8000/tokenize");
        assert_eq!(body["model"], "m-up");
        assert_eq!(body["tools"], json!([{"type": "function"}]));
        assert!(beta_sent.is_none());
        let (url, body, _) = ask(BackendKind::Llamacpp).unwrap();
        assert_eq!(url, "http://up:8000/apply-template");
        assert_eq!(
            body,
            json!({"messages": [{"role": "user", "content": "hi"}]})
        );
        for kind in [BackendKind::Openai, BackendKind::Api3, BackendKind::Ollama] {
            assert!(ask(kind).is_none());
        }
    }

    #[test]
    fn counting_answers_are_read() {
        let tools = json!([{"t": 1}]);
        assert_eq!(
            BackendKind::Anthropic.read_count(br#"{"input_tokens": 12}"#, None),
            Some(Counted::Tokens(12))
        );
        assert_eq!(
            BackendKind::Vllm.read_count(br#"{"count": 7, "max_model_len": 9}"#, None),
            Some(Counted::Tokens(7))
        );
        assert_eq!(
            BackendKind::Llamacpp.read_count(br#"{"prompt": "<s>hi"}"#, Some(&tools)),
            Some(Counted::Tokenize(json!({"content": "<s>hi[{\"t\":1}]"})))
        );
        assert_eq!(
            BackendKind::Llamacpp.read_count(br#"{"tokens": [1, 2, 3]}"#, None),
            Some(Counted::Tokens(3))
        );
        assert_eq!(BackendKind::Vllm.read_count(b"<html>", None), None);
    }
}
