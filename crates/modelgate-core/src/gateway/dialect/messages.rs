//! The Messages dialect (Anthropic's API): an Anthropic deployment is sent
//! the request as it came; every other deployment its chat translation,
//! whose answer is translated back into a Message or Anthropic's event
//! grammar (see [`crate::anthropic`]).

use bytes::Bytes;
use serde_json::Value;

use super::{Answer, Bridge, Frame, Plan};
use crate::anthropic::{self, Echo};
use crate::domain::Model;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::gateway::proxy::Incoming;
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
