//! The Responses dialect: a request's stored state (`previous_response_id`,
//! `item_reference`s) resolved into its input before admission, its chat
//! translation for deployments that bridge, and its answer kept and named
//! as the gateway names Responses.

use bytes::Bytes;

use super::{Answer, Bridge, Frame, Plan};
use crate::backend::{ResponsesApi, UpstreamCall};
use crate::deployment::Deployment;
use crate::domain::{ApiKey, Model};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::gateway::proxy::Incoming;
use crate::ports::{Ports, RateDecision};
use crate::request::ProxyRequest;
use crate::responses::{self, Echo};

impl<P: Ports> Gateway<P> {
    pub(super) async fn plan_responses(
        &self,
        key: &ApiKey,
        (model, deployments): (&Model, &[Deployment]),
        mut request: ProxyRequest,
        counted: Option<RateDecision>,
        inc: Incoming<'_>,
    ) -> Result<(Plan, Option<RateDecision>), GatewayError> {
        // Walking a stored conversation reads the store, up to a thousand
        // times: a key at its RPM limit is refused before it.
        let counted = match counted {
            None if Self::names_stored_state(&request) => Some(self.admit_key_rate(key).await?),
            counted => counted,
        };
        let conversation = self
            .continue_conversation(key, model, &mut request, inc.request_id)
            .await?;
        let bridges = deployments
            .iter()
            .any(|d| model.responses_api_of(d) == ResponsesApi::Bridge);
        let bridge = if bridges {
            let echo = Echo::new(
                &request.body,
                inc.request_id,
                &model.name,
                inc.started_ms / 1000,
            )
            .with_state(
                conversation.keep.is_some(),
                conversation.previous_response_id.clone(),
            );
            let chat = responses::to_chat(&request.body)?;
            Some(Bridge {
                frame: Frame::Responses(echo),
                chat: chat.chat,
                ignored_tools: chat.ignored_tools.join(", "),
                always: false,
            })
        } else {
            None
        };
        let plan = Plan {
            request,
            conversation,
            bridge,
        };
        Ok((plan, counted))
    }

    /// The Response for the client from the upstream's `body` (a chat
    /// completion if `bridged`), kept if the plan keeps it.
    pub(super) async fn answer_responses(
        &self,
        mut answer: Answer,
        call: &UpstreamCall,
        bridged: bool,
        body: Bytes,
    ) -> Result<Bytes, GatewayError> {
        let mut body = match answer.bridge.take().filter(|_| bridged) {
            Some((Frame::Responses(echo), _)) => responses::from_chat(&echo, &body)?,
            _ => body,
        };
        if let Some(keep) = answer.keep()
            && !self.keep_response(keep, &body).await
        {
            body = not_stored(body);
        }
        if !bridged {
            let previous = answer.conversation.previous_response_id.as_deref();
            body = named(body, &call.request_id, previous);
        }
        Ok(body)
    }
}

/// An upstream's Response named as the gateway names it (see
/// [`crate::backend::response_id`]).
fn named(body: Bytes, request_id: &str, previous: Option<&str>) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut v) => {
            let id = crate::backend::response_id(request_id);
            crate::backend::name_response(&mut v, &id, previous);
            Bytes::from(v.to_string())
        }
        Err(_) => body,
    }
}

/// A Response that could not be kept says so (`store: false`).
fn not_stored(body: Bytes) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut v) if v.get("store").is_some() => {
            v["store"] = serde_json::Value::Bool(false);
            Bytes::from(v.to_string())
        }
        _ => body,
    }
}
