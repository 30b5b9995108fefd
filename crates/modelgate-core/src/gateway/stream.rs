//! A streamed answer: upstream chunks through the relay to the client, and
//! the settlement that must run exactly once however the stream ends.

use std::future::Future;

use bytes::Bytes;
use futures_util::future::Either;

use super::Gateway;
use super::admission::Admission;
use super::conversation::Keep;
use super::mcp_listen::ListenStream;
use super::mcp_stream::McpStream;
use crate::anthropic::MessagesRelay;
use crate::backend::{Relay, StreamOutcome, StreamState};
use crate::ports::{ByteStream, HttpClient, MaybeSend, Ports};
use crate::responses::BridgeRelay;
use crate::routing::Pick;

/// What turns upstream bytes into client bytes: the backend's relay, or
/// the Responses bridge over it.
#[derive(Debug)]
// One per stream, inside the boxed `ResponseStream`: boxing the common
// variant too would only add an allocation per stream.
#[allow(clippy::large_enum_variant)]
pub(super) enum ClientRelay {
    /// The client gets the backend's relay's output.
    Upstream(Relay),
    /// The client gets Responses events made from it.
    Bridge(Box<BridgeRelay>),
    /// The client gets Anthropic's Messages events made from it.
    Messages(Box<MessagesRelay>),
}

impl ClientRelay {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        match self {
            Self::Upstream(r) => r.feed(chunk, out),
            Self::Bridge(r) => r.feed(chunk, out),
            Self::Messages(r) => r.feed(chunk, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Self::Upstream(r) => r.finish(out),
            Self::Bridge(r) => r.finish(out),
            Self::Messages(r) => r.finish(out),
        }
    }

    fn fail(&mut self, code: &'static str, message: &str, out: &mut Vec<u8>) {
        match self {
            Self::Upstream(r) => r.fail(code, message, out),
            Self::Bridge(r) => r.fail(code, message, out),
            Self::Messages(r) => r.fail(code, message, out),
        }
    }

    /// Show a silent upstream's stream is alive, if the client's API has a
    /// way to (Anthropic's `ping`).
    fn ping(&mut self, out: &mut Vec<u8>) {
        match self {
            Self::Messages(r) => r.ping(out),
            Self::Upstream(r) => r.ping(out),
            Self::Bridge(_) => {}
        }
    }

    fn is_done(&self) -> bool {
        match self {
            Self::Upstream(r) => r.is_done(),
            Self::Bridge(r) => r.is_done(),
            Self::Messages(r) => r.is_done(),
        }
    }

    fn state(&self) -> &StreamState {
        match self {
            Self::Upstream(r) => r.state(),
            Self::Bridge(r) => r.state(),
            Self::Messages(r) => r.state(),
        }
    }

    /// The Response a Responses stream ended with, JSON.
    fn final_response(&self) -> Option<&str> {
        match self {
            Self::Upstream(Relay::Responses(r)) => r.final_response(),
            Self::Upstream(_) | Self::Messages(_) => None,
            Self::Bridge(r) => r.final_response(),
        }
    }
}

/// The client side of a streamed response: a model's answer, or an MCP
/// server's events.
///
/// The runtime pulls [`next_chunk`](Self::next_chunk) until `None`, then
/// calls [`take_settlement`](Self::take_settlement) and awaits the future it
/// returns, so usage is recorded when the client sees the end. A stream
/// dropped before that (the client went away) settles what it relayed on
/// the runtime's detached work ([`Ports::spawn`]); dropping it also drops
/// the upstream body, which cancels the upstream request.
pub struct ResponseStream<P: Ports>(Kind<P>);

enum Kind<P: Ports> {
    Model(Box<ModelStream<P>>),
    Mcp(Box<McpStream<P>>),
    McpListen(Box<ListenStream<P>>),
}

impl<P: Ports> From<ModelStream<P>> for ResponseStream<P> {
    fn from(s: ModelStream<P>) -> Self {
        Self(Kind::Model(Box::new(s)))
    }
}

impl<P: Ports> From<McpStream<P>> for ResponseStream<P> {
    fn from(s: McpStream<P>) -> Self {
        Self(Kind::Mcp(Box::new(s)))
    }
}

impl<P: Ports> From<ListenStream<P>> for ResponseStream<P> {
    fn from(s: ListenStream<P>) -> Self {
        Self(Kind::McpListen(Box::new(s)))
    }
}

impl<P: Ports> ResponseStream<P> {
    /// The next bytes for the client, `None` once the stream is over.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        match &mut self.0 {
            Kind::Model(s) => s.next_chunk().await,
            Kind::Mcp(s) => s.next_chunk().await,
            Kind::McpListen(s) => s.next_chunk().await,
        }
    }

    /// The settlement to run, the first time this is called; `None` after.
    pub fn take_settlement(&mut self) -> Option<impl Future<Output = ()> + MaybeSend + 'static> {
        match &mut self.0 {
            Kind::Model(s) => s.take_settlement().map(Either::Left),
            Kind::Mcp(s) => s.take_settlement().map(Either::Right),
            // Nothing is admitted for it, so nothing is settled.
            Kind::McpListen(_) => None,
        }
    }
}

/// A model's streamed answer.
pub(super) struct ModelStream<P: Ports> {
    gateway: Gateway<P>,
    upstream: Option<<P::Http as HttpClient>::Body>,
    relay: ClientRelay,
    admission: Option<Admission<P>>,
    deadline_ms: i64,
    /// Keep the Response the stream ends with.
    keep: Option<Keep>,
    /// The deployment's load share, until the upstream is done; its
    /// latency sample is the time to the first chunk.
    pick: Option<Pick>,
    /// The first upstream chunk has arrived.
    first_seen: bool,
    /// Ping the client after this long without an upstream chunk, ms.
    ping_ms: Option<u64>,
}

impl<P: Ports> ModelStream<P> {
    pub(super) fn new(
        gateway: Gateway<P>,
        upstream: <P::Http as HttpClient>::Body,
        relay: ClientRelay,
        admission: Admission<P>,
        deadline_ms: i64,
    ) -> Self {
        Self {
            gateway,
            upstream: Some(upstream),
            relay,
            admission: Some(admission),
            deadline_ms,
            keep: None,
            pick: None,
            first_seen: false,
            ping_ms: None,
        }
    }

    /// Ping the client every `ms` while the upstream is silent (the relay
    /// decides whether its API has a ping).
    pub(super) fn pinging(mut self, ms: u64) -> Self {
        self.ping_ms = Some(ms.max(1));
        self
    }

    /// Time the first chunk, and hold `pick` until the upstream is done.
    pub(super) fn timing(mut self, pick: Pick) -> Self {
        self.pick = Some(pick);
        self
    }

    /// Keep the Response this stream ends with, as `keep` says.
    pub(super) fn keeping(mut self, keep: Option<Keep>) -> Self {
        self.keep = keep;
        self
    }

    /// The next bytes for the client, `None` once the stream is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        while out.is_empty() {
            if self.relay.is_done() {
                // Nothing more will be relayed: let the upstream go now.
                self.upstream = None;
                self.pick = None;
                return None;
            }
            let upstream = self.upstream.as_mut()?;
            // Waiting for a chunk may end at a ping (`next_chunk` is
            // cancel-safe: the chunk is read on the next call).
            let until = match self.ping_ms {
                Some(ms) => self
                    .deadline_ms
                    .min(self.gateway.now_ms().saturating_add_unsigned(ms)),
                None => self.deadline_ms,
            };
            match self.gateway.until(until, upstream.next_chunk()).await {
                Some(Some(Ok(chunk))) => {
                    if !std::mem::replace(&mut self.first_seen, true) {
                        self.first_chunk();
                    }
                    self.relay.feed(&chunk, &mut out);
                }
                Some(None) => self.relay.finish(&mut out),
                Some(Some(Err(e))) => {
                    tracing::warn!(request_id = %self.request_id(), error = %e, "upstream stream broke");
                    self.relay.fail(
                        "upstream_stream_broken",
                        "The upstream connection broke during the stream.",
                        &mut out,
                    );
                }
                None if until < self.deadline_ms => self.relay.ping(&mut out),
                None => {
                    self.relay.fail(
                        "upstream_timeout",
                        "The upstream did not finish within the gateway's timeout.",
                        &mut out,
                    );
                }
            }
        }
        Some(Bytes::from(out))
    }

    /// Time the first upstream chunk: the deployment's latency sample and
    /// the time-to-first-token metric.
    fn first_chunk(&mut self) {
        let g = &self.gateway;
        let now = g.now_ms();
        if let Some(pick) = &mut self.pick {
            pick.observe_latency(now, &g.config().resilience);
        }
        if let Some(a) = &self.admission {
            let ctx = a.ctx();
            crate::observe::first_token(ctx.endpoint.as_str(), &ctx.model, now - ctx.started_ms);
        }
    }

    fn request_id(&self) -> &str {
        self.admission
            .as_ref()
            .map_or("", |a| a.ctx().request_id.as_str())
    }

    /// The settlement to run, the first time this is called; `None` after.
    /// A stream that is not finished counts as a client disconnect: what was
    /// generated so far is charged and the reservation released.
    fn take_settlement(&mut self) -> Option<impl Future<Output = ()> + MaybeSend + 'static> {
        let admission = self.admission.take()?;
        self.upstream = None;
        self.pick = None;
        let state = self.relay.state();
        let error = match &state.outcome {
            Some(StreamOutcome::Complete) => None,
            Some(StreamOutcome::UpstreamError) => Some("upstream_error".to_owned()),
            Some(StreamOutcome::Failed(code)) => Some((*code).to_owned()),
            None => Some("client_disconnected".to_owned()),
        };
        let (usage, chunks) = (state.usage, state.output_chunks);
        // A stream that ended with a Response is kept before the client
        // sees the end, so a follow-up can continue it at once.
        let keep = self
            .keep
            .take()
            .zip(self.relay.final_response().map(str::to_owned));
        let gateway = self.gateway.clone();
        // Dropped unfinished, the future's admission still settles.
        Some(async move {
            if let Some((keep, answer)) = keep {
                gateway.keep_response(keep, answer.as_bytes()).await;
            }
            admission.settle(usage, chunks, 200, error).await;
        })
    }
}

impl<P: Ports> Drop for ModelStream<P> {
    fn drop(&mut self) {
        if let Some(settle) = self.take_settlement() {
            self.gateway.ports().spawn(settle);
        }
    }
}
