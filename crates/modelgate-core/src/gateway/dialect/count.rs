//! `POST /v1/messages/count_tokens`: a Messages request's input tokens,
//! by the upstream's own tokenizer where the model's first deployment has
//! one (Anthropic, vLLM, llama.cpp: see `crate::backend`'s `tokens`), else
//! the gateway's estimate ([`estimate_tokens`]). The answer says which in
//! `x-modelgate-token-count` (`upstream` or `estimate`), so it says
//! nothing false about how the number was made.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

use crate::anthropic;
use crate::backend::{Counted, Target};
use crate::deployment::Deployment;
use crate::error::{GatewayError, RequestError};
use crate::gateway::{Gateway, Peer, Response, Route, json_response};
use crate::ports::Ports;

/// The longest a count may wait on its upstream, ms: a count is a cheap
/// call, and the estimate is the answer when the tokenizer is slow.
const COUNT_DEADLINE_MS: i64 = 10_000;
/// The largest counting answer read.
const MAX_COUNT_ANSWER: usize = 4 << 20;

impl<P: Ports> Gateway<P> {
    /// Count a request's tokens (see the module docs). It counts against
    /// the key's requests per minute, and checks what a Messages request is
    /// checked for.
    pub(in crate::gateway) async fn count_tokens(
        &self,
        req: &http::Request<Bytes>,
        peer: Peer,
    ) -> Result<Response<P>, GatewayError> {
        let key = self.key_of(req, peer).await?;
        self.admit_key_rate(&key).await?;
        let limit = self.body_limit(&Route::CountTokens);
        let raw = crate::encoding::decode(req.headers(), req.body(), limit)?;
        let request = crate::request::parse_count_tokens(&raw)?;
        let name = request
            .model
            .as_deref()
            .or(key.default_model.as_deref())
            .ok_or_else(|| RequestError::invalid("model: Field required", Some("model")))?;
        let model = self.resolve_model(&key, name).await?;
        let chat = anthropic::to_chat(&request.body)?.chat;
        let headers = crate::gateway::route::anthropic_headers(req.headers());
        let counted = match model.deployments().first() {
            Some(d) => {
                self.count_upstream(d, (&request.body, &headers), &chat)
                    .await
            }
            None => None,
        };
        let (tokens, how) = match counted {
            Some(n) => (n, "upstream"),
            None => (estimate_tokens(&request.body), "estimate"),
        };
        let mut resp = json_response(StatusCode::OK, &json!({"input_tokens": tokens}));
        resp.headers_mut()
            .insert("x-modelgate-token-count", HeaderValue::from_static(how));
        Ok(resp)
    }

    /// The count of deployment `d`'s tokenizer, if it has one and answers.
    async fn count_upstream(
        &self,
        d: &Deployment,
        messages: (&Map<String, Value>, &[(http::HeaderName, HeaderValue)]),
        chat: &Map<String, Value>,
    ) -> Option<u64> {
        let api_key = self.resolve_key(d.api_key.as_ref()).ok()?;
        let target = Target {
            base_url: &d.base_url,
            model: &d.upstream_model,
            api_key: api_key.as_deref(),
        };
        let deadline = self.now_ms().saturating_add(COUNT_DEADLINE_MS);
        let mut req = d.backend.count_request(&target, messages, chat)?.ok()?;
        // At most two calls (llama.cpp renders the template, then counts).
        for _ in 0..2 {
            let resp = self.until(deadline, self.send_upstream(req)).await?.ok()?;
            if !resp.status().is_success() {
                tracing::debug!(deployment = %d.name, status = resp.status().as_u16(),
                    "the upstream did not count: estimating");
                return None;
            }
            let body = self
                .read_limited(resp.into_body(), deadline, MAX_COUNT_ANSWER)
                .await
                .ok()?;
            match d.backend.read_count(&body, chat.get("tools"))? {
                Counted::Tokens(n) => return Some(n),
                Counted::Tokenize(next) => req = d.backend.tokenize_request(&target, &next).ok()?,
            }
        }
        None
    }
}

/// Bytes of text per token the estimate assumes (English prose and code
/// run 3.5 to 4.5 with the common BPE vocabularies).
const BYTES_PER_TOKEN: u64 = 4;
/// Tokens the estimate counts for an image (Anthropic's own rule of thumb
/// for a 1,000 x 1,000 pixel image is about 1,300).
const IMAGE_TOKENS: u64 = 1_500;

/// An estimate of a Messages request's input tokens: its text (system,
/// messages, tool definitions) at [`BYTES_PER_TOKEN`], images at
/// [`IMAGE_TOKENS`] each, a few tokens per message for the template.
fn estimate_tokens(body: &Map<String, Value>) -> u64 {
    fn walk(v: &Value, text: &mut u64, images: &mut u64) {
        match v {
            Value::String(s) => *text += s.len() as u64,
            Value::Array(a) => a.iter().for_each(|x| walk(x, text, images)),
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("image") => {
                *images += 1;
            }
            Value::Object(o) => o.values().for_each(|x| walk(x, text, images)),
            _ => {}
        }
    }
    let (mut text, mut images) = (0, 0);
    for k in ["system", "messages"] {
        if let Some(v) = body.get(k) {
            walk(v, &mut text, &mut images);
        }
    }
    text += body.get("tools").map_or(0, crate::request::json_len);
    let turns = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, Vec::len) as u64;
    text.div_ceil(BYTES_PER_TOKEN) + images * IMAGE_TOKENS + 4 * turns
}
