//! The dialect seam: what a client API adds to the proxy path.
//!
//! The proxy path ([`super::proxy`]) is the same for every client API:
//! authenticate, parse, resolve the model, plan, admit, forward, respond,
//! settle. A dialect owns the two steps that depend on the wire format:
//!
//! - **plan**: the parsed request becomes a [`Plan`]: what is reserved
//!   (stored state resolved into the input first, so the reservation counts
//!   it) and what is sent, to deployments that speak the client's API and,
//!   translated, to those that do not;
//! - **answer**: the upstream's answer becomes the client's, as a relay for
//!   a stream ([`Answer::relay`]) or a body ([`super::Gateway::answer_body`]).
//!
//! Chat, completions and embeddings are spoken by every backend's adapter
//! (`crate::backend`), so their plan is the request as it came. Responses
//! ([`responses`]) adds stored conversations and the chat bridge; Messages
//! ([`messages`]) is Anthropic's API, translated to chat for every backend.
//! A new client API is a module beside these and an arm in each `match`
//! below.

mod count;
mod messages;
mod responses;

use messages::answer_messages;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::Gateway;
use super::conversation::{Conversation, Keep};
use super::forward::Calls;
use super::proxy::Incoming;
use super::stream::ClientRelay;
use crate::anthropic::{self, MessagesRelay};
use crate::backend::{Relay, UpstreamCall, Usage};
use crate::deployment::Deployment;
use crate::domain::{ApiKey, Model};
use crate::error::GatewayError;
use crate::ports::{Ports, RateDecision};
use crate::request::{Endpoint, ProxyRequest};
use crate::responses::{BridgeRelay, Echo};

/// A request planned by its dialect.
#[derive(Debug)]
pub(super) struct Plan {
    /// The request to reserve for and send.
    pub(super) request: ProxyRequest,
    /// Its stored state (Responses).
    conversation: Conversation,
    /// Its chat translation, for deployments that bridge (Responses).
    bridge: Option<Bridge>,
}

/// A request translated to a chat completion, and the frame its answer is
/// translated back into.
#[derive(Debug)]
struct Bridge {
    frame: Frame,
    chat: Map<String, Value>,
    /// Tools the translation had to leave out, for the client to see.
    ignored_tools: String,
    /// Whether every deployment that does not speak the client's API gets
    /// the translation (Messages), or only those whose model bridges
    /// Responses.
    always: bool,
}

/// What a chat answer is translated back into.
#[derive(Debug)]
enum Frame {
    Responses(Echo),
    Messages(anthropic::Echo),
}

/// What turns the upstream's answer into the client's, once the call sent
/// is known.
#[derive(Debug)]
pub(super) struct Answer {
    endpoint: Endpoint,
    conversation: Conversation,
    bridge: Option<(Frame, String)>,
}

impl<P: Ports> Gateway<P> {
    /// The plan for `request`, by its dialect, and the key's RPM decision
    /// if planning counted the request against it (`counted`: if it was
    /// counted already).
    pub(super) async fn plan(
        &self,
        key: &ApiKey,
        (model, deployments): (&Model, &[Deployment]),
        request: ProxyRequest,
        counted: Option<RateDecision>,
        inc: Incoming<'_>,
    ) -> Result<(Plan, Option<RateDecision>), GatewayError> {
        match inc.endpoint {
            Endpoint::Responses => {
                self.plan_responses(key, (model, deployments), request, counted, inc)
                    .await
            }
            Endpoint::Messages => Ok((self.plan_messages(model, request, inc)?, counted)),
            Endpoint::Chat | Endpoint::Completion | Endpoint::Embeddings => {
                Ok((Plan::as_sent(request), counted))
            }
        }
    }

    /// The client's body from the upstream's buffered answer to `call`,
    /// and its usage; kept if the plan keeps it.
    pub(super) async fn answer_body(
        &self,
        answer: Answer,
        (call, deployment, bridged): (&UpstreamCall, &Deployment, bool),
        bytes: &[u8],
        created_s: i64,
    ) -> Result<(Bytes, Option<Usage>), GatewayError> {
        let (body, usage) = deployment
            .backend
            .parse_response(call, 200, bytes, created_s)?;
        match answer.endpoint {
            Endpoint::Responses => {
                let body = self.answer_responses(answer, call, bridged, body).await?;
                Ok((body, usage))
            }
            Endpoint::Messages => Ok((answer_messages(answer, bridged, &body)?, usage)),
            Endpoint::Chat | Endpoint::Completion | Endpoint::Embeddings => Ok((body, usage)),
        }
    }
}

impl Plan {
    /// A plan that sends the request as it came.
    fn as_sent(request: ProxyRequest) -> Self {
        Self {
            request,
            conversation: Conversation::default(),
            bridge: None,
        }
    }

    /// The calls to send, made by `call(endpoint, body, client_include_usage)`,
    /// and what answers them.
    pub(super) fn into_calls(
        self,
        endpoint: Endpoint,
        call: impl Fn(Endpoint, Map<String, Value>, bool) -> UpstreamCall,
    ) -> (Calls, Answer) {
        let Self {
            request,
            conversation,
            bridge,
        } = self;
        // Bridged, the upstream call is a chat completion whose usage chunk
        // the bridge reads.
        let (bridged, bridge, always) = match bridge {
            Some(b) => (
                Some(call(Endpoint::Chat, b.chat, true)),
                Some((b.frame, b.ignored_tools)),
                b.always,
            ),
            None => (None, None, false),
        };
        let calls = Calls {
            direct: call(endpoint, request.body, request.include_usage),
            bridged,
            always,
        };
        let answer = Answer {
            endpoint,
            conversation,
            bridge,
        };
        (calls, answer)
    }
}

impl Answer {
    /// The client's relay over the backend's `relay` (of the bridged call
    /// if `bridged`).
    pub(super) fn relay(&mut self, relay: Relay, bridged: bool) -> ClientRelay {
        let previous = self.conversation.previous_response_id.clone();
        let relay = relay.with_previous_response_id(previous);
        match self.bridge.take().filter(|_| bridged) {
            Some((Frame::Responses(echo), _)) => {
                ClientRelay::Bridge(Box::new(BridgeRelay::new(relay, echo)))
            }
            Some((Frame::Messages(echo), _)) => {
                ClientRelay::Messages(Box::new(MessagesRelay::new(relay, echo)))
            }
            None => ClientRelay::Upstream(relay),
        }
    }

    /// Whether the client's stream is pinged while the upstream is silent
    /// (Anthropic's grammar has a `ping`).
    pub(super) fn pings(&self) -> bool {
        self.endpoint == Endpoint::Messages
    }

    /// What to keep of the answer, once (a stream keeps what it ends with).
    pub(super) fn keep(&mut self) -> Option<Keep> {
        self.conversation.keep.take()
    }

    /// The tools a bridged call left out, comma-separated ("" if none).
    pub(super) fn ignored_tools(&self, bridged: bool) -> &str {
        match &self.bridge {
            Some((_, tools)) if bridged => tools,
            _ => "",
        }
    }
}
