//! The Messages dialect (Anthropic's API): an Anthropic deployment is sent
//! the request as it came; every other deployment its chat translation,
//! whose answer is translated back into a Message or Anthropic's event
//! grammar (see [`crate::anthropic`]).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

use super::{Answer, Bridge, Frame, Plan};
use crate::anthropic::{self, Echo};
use crate::domain::Model;
use crate::error::{GatewayError, RequestError};
use crate::gateway::proxy::Incoming;
use crate::gateway::{Gateway, Peer, Response, Route, json_response};
use crate::ports::Ports;
use crate::request::ProxyRequest;

impl<P: Ports> Gateway<P> {
    /// The plan for a Messages request: its chat translation, checked
    /// before anything is reserved.
    pub(super) fn plan_messages(
        &self,
        model: &Model,
        request: ProxyRequest,
        inc: Incoming<'_>,
    ) -> Result<Plan, GatewayError> {
        let translated = anthropic::to_chat(&request.body)?;
        let stops = request
            .body
            .get("stop_sequences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let bridge = Bridge {
            frame: Frame::Messages(Echo::new(inc.request_id, &model.name, stops)),
            chat: translated.chat,
            ignored_tools: translated.ignored_tools.join(", "),
            always: true,
        };
        Ok(Plan {
            bridge: Some(bridge),
            ..Plan::as_sent(request)
        })
    }
}

impl<P: Ports> Gateway<P> {
    /// `POST /v1/messages/count_tokens`: the request's input tokens,
    /// estimated (see [`estimate_tokens`]); the answer says so in
    /// `x-modelgate-token-count`. It counts against the key's requests per
    /// minute, and checks what a Messages request is checked for.
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
        self.resolve_model(&key, name).await?;
        anthropic::to_chat(&request.body)?;
        let tokens = estimate_tokens(&request.body);
        let mut resp = json_response(StatusCode::OK, &json!({"input_tokens": tokens}));
        resp.headers_mut().insert(
            "x-modelgate-token-count",
            http::HeaderValue::from_static("estimate"),
        );
        Ok(resp)
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

/// The Message for the upstream's answer `body`: a chat completion if
/// `bridged`, else a Message already.
pub(super) fn answer_messages(
    mut answer: Answer,
    bridged: bool,
    body: &[u8],
) -> Result<Bytes, GatewayError> {
    match answer.bridge.take().filter(|_| bridged) {
        Some((Frame::Messages(echo), _)) => Ok(anthropic::from_chat(&echo, body)?),
        _ => Ok(Bytes::copy_from_slice(body)),
    }
}

/// The headers of a Messages request that an Anthropic upstream gets as
/// they came: the API version and the betas (never allow-listed: a feature
/// is a body field and its beta together).
pub(in crate::gateway) fn anthropic_headers(
    headers: &http::HeaderMap,
) -> Vec<(HeaderName, HeaderValue)> {
    ["anthropic-version", "anthropic-beta"]
        .into_iter()
        .filter_map(|name| Some((HeaderName::from_static(name), headers.get(name)?.clone())))
        .collect()
}
