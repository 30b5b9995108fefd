//! A client's standing event stream, its servers' own merged, for what
//! servers send outside any call (a subscribed resource updated, a list
//! changed, a request of the client), a resource named as the client knows
//! it, and a ping while all are quiet: a session client's (`GET /mcp`, the
//! handshake era) takes everything; a stateless client's subscription
//! (`subscriptions/listen`, [`super::mcp_subscribe`]) what it asked for,
//! tagged as its own, between its acknowledgment and its closing result.
//! It ends when every server's has; dropping it (the client gone) drops
//! theirs.

use bytes::Bytes;
use futures_util::future::{Either, join_all, select, select_all};
use http::Method;
use serde_json::Value;

use super::Gateway;
use super::mcp_stream::write;
use super::mcp_upstream::sent_events;
use crate::codec::SseDecoder;
use crate::error::GatewayError;
use crate::mcp::session::{Session, Upstream};
use crate::mcp::subscription::{self, Filter};
use crate::mcp::{McpServer, links, relay};
use crate::ports::{ByteStream, HttpClient, Ports};

/// A comment to the client after this long without an event, ms (proxies
/// end streams that stay quiet).
const PING_MS: u64 = 15_000;
/// Most bytes relayed from one server's stream; past it, that stream ends
/// (the client opens another).
const MAX_STREAM: usize = 64 * 1024 * 1024;

/// One server's standing stream.
pub(super) struct Source<P: Ports> {
    server: String,
    body: Option<<P::Http as HttpClient>::Body>,
    decoder: SseDecoder,
    read: usize,
    /// What of it a subscription hears (`None`: a session hears all).
    filter: Option<Filter>,
}

impl<P: Ports> Source<P> {
    pub(super) fn new(
        server: &str,
        body: <P::Http as HttpClient>::Body,
        filter: Option<Filter>,
    ) -> Self {
        Self {
            server: server.to_owned(),
            body: Some(body),
            decoder: SseDecoder::new(),
            read: 0,
            filter,
        }
    }

    /// Read up to the message that acknowledges the server's subscription
    /// (dropping nothing after it); whether it came before `deadline`.
    pub(super) async fn acknowledged(&mut self, gateway: &Gateway<P>, deadline: i64) -> bool {
        loop {
            while let Ok(Some(event)) = self.decoder.next_event() {
                let message = serde_json::from_str::<Value>(&event.data).unwrap_or_default();
                if message["method"] == subscription::ACKNOWLEDGED {
                    return true;
                }
            }
            let Some(body) = self.body.as_mut() else {
                return false;
            };
            match gateway.until(deadline, body.next_chunk()).await {
                Some(Some(Ok(chunk))) => {
                    self.read += chunk.len();
                    self.decoder.push(&chunk);
                }
                _ => return false,
            }
        }
    }
}

/// A stateless client's subscription.
pub(super) struct Subscription {
    /// Its `subscriptions/listen` request's id, which tags its messages.
    pub(super) id: Value,
    /// The acknowledgment, until it is sent.
    pub(super) ack: Option<Value>,
    /// The closing result was sent.
    pub(super) closed: bool,
    /// Servers' sessions opened for it, ended with it.
    pub(super) opened: Vec<(McpServer, Upstream)>,
}

/// The client side of a standing stream.
pub(crate) struct ListenStream<P: Ports> {
    gateway: Gateway<P>,
    sources: Vec<Source<P>>,
    /// Resources are named with their server (`/mcp`, not `/mcp/{server}`).
    prefixed: bool,
    /// `None` for a session's stream.
    subscription: Option<Subscription>,
}

impl<P: Ports> ListenStream<P> {
    pub(super) fn subscribed(
        gateway: &Gateway<P>,
        sources: Vec<Source<P>>,
        prefixed: bool,
        subscription: Subscription,
    ) -> Self {
        Self {
            gateway: gateway.clone(),
            sources,
            prefixed,
            subscription: Some(subscription),
        }
    }
}

impl<P: Ports> Gateway<P> {
    /// `GET /mcp` in `session`: the servers' standing streams, or a 405
    /// when none of them has one.
    pub(super) async fn mcp_listen(
        &self,
        key: &crate::domain::ApiKey,
        session: &Session,
        prefixed: bool,
    ) -> Result<Option<ListenStream<P>>, GatewayError> {
        let servers = self.session_servers(key, session).await?;
        let opened = join_all(servers.iter().map(|(s, u)| async move {
            let sent = self.mcp_send(s, Method::GET, Some(u), None, &[]).await;
            match sent {
                Ok(sent) if sent.resp.status().is_success() && sent_events(&sent.resp) => {
                    Some(Source::new(&s.name, sent.resp.into_body(), None))
                }
                // 405: it has no standing stream.
                _ => None,
            }
        }))
        .await;
        let sources: Vec<Source<P>> = opened.into_iter().flatten().collect();
        Ok((!sources.is_empty()).then(|| ListenStream {
            gateway: self.clone(),
            sources,
            prefixed,
            subscription: None,
        }))
    }
}

impl<P: Ports> ListenStream<P> {
    /// The next events for the client (or a ping), `None` once every
    /// server's stream has ended.
    pub(super) async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(ack) = self.subscription.as_mut().and_then(|s| s.ack.take()) {
            return Some(message_bytes(&ack));
        }
        loop {
            self.sources.retain(|s| s.body.is_some());
            if self.sources.is_empty() {
                // A subscription ends on purpose, so its client knows no
                // more will come.
                let sub = self.subscription.as_mut().filter(|s| !s.closed)?;
                sub.closed = true;
                return Some(message_bytes(&subscription::closed(&sub.id)));
            }
            // What the servers' decoders hold (what came with a server's
            // acknowledgment included) goes first.
            let mut out = Vec::new();
            for source in &mut self.sources {
                drain(source, self.subscription.as_ref(), self.prefixed, &mut out);
            }
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
            let arrived = {
                let reads = self.sources.iter_mut().enumerate().filter_map(|(i, s)| {
                    let body = s.body.as_mut()?;
                    Some(Box::pin(async move { (i, body.next_chunk().await) }))
                });
                let quiet = Box::pin(self.gateway.ports().sleep(PING_MS));
                match select(select_all(reads), quiet).await {
                    Either::Left((((i, chunk), _, _), _)) => Some((i, chunk)),
                    Either::Right(_) => None,
                }
            };
            let Some((i, chunk)) = arrived else {
                return Some(Bytes::from_static(b": ping\n\n"));
            };
            let source = &mut self.sources[i];
            let Some(Ok(chunk)) = chunk else {
                source.body = None;
                continue;
            };
            source.read += chunk.len();
            if source.read > MAX_STREAM {
                source.body = None;
                continue;
            }
            source.decoder.push(&chunk);
        }
    }
}

impl<P: Ports> Drop for ListenStream<P> {
    fn drop(&mut self) {
        let Some(sub) = self.subscription.as_mut() else {
            return;
        };
        let opened = std::mem::take(&mut sub.opened);
        if !opened.is_empty() {
            let gateway = self.gateway.clone();
            self.gateway
                .ports()
                .spawn(async move { gateway.end_sessions(&opened).await });
        }
    }
}

/// The events `source` holds decoded, as they go to the client.
fn drain<P: Ports>(
    source: &mut Source<P>,
    subscription: Option<&Subscription>,
    prefixed: bool,
    out: &mut Vec<u8>,
) {
    while let Ok(Some(event)) = source.decoder.next_event() {
        let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
            continue;
        };
        match (subscription, &source.filter) {
            (Some(sub), Some(filter)) => {
                // A server's own subscription ends with its result.
                if message.get("id").is_some() && message.get("method").is_none() {
                    source.body = None;
                }
                pass_subscribed(message, &source.server, prefixed, filter, sub, out);
            }
            _ => pass_on(message, &source.server, prefixed, out),
        }
    }
}

/// One message as the bytes of an SSE event.
fn message_bytes(message: &Value) -> Bytes {
    let mut out = Vec::new();
    write(message, &mut out);
    Bytes::from(out)
}

/// A resource's URI as the client names it.
fn rename_updated(message: &mut Value, server: &str, prefixed: bool) {
    if message.get("method").and_then(Value::as_str) == Some(subscription::UPDATED)
        && prefixed
        && let Some(uri) = message.pointer_mut("/params/uri")
        && let Some(own) = uri.as_str()
    {
        *uri = Value::String(links::exposed(server, own));
    }
}

/// What of a server's stream goes to a subscription: the notifications
/// it asked for, under its tag; never a request (a stateless client is
/// asked nothing outside a call), nor the server's own acknowledgment.
fn pass_subscribed(
    mut message: Value,
    server: &str,
    prefixed: bool,
    filter: &Filter,
    sub: &Subscription,
    out: &mut Vec<u8>,
) {
    let admitted = match (
        message.get("method").and_then(Value::as_str),
        message.get("id"),
    ) {
        (Some(method), None) => filter.admits(method),
        _ => false,
    };
    if admitted {
        rename_updated(&mut message, server, prefixed);
        subscription::tag(&mut message, &sub.id);
        write(&message, out);
    }
}

/// What of a server's standing stream goes to the client: its
/// notifications (a resource under the client's name for it) and its
/// requests (under a relayed id, answered by the client's POST); not a
/// response, which answers nothing of the client's.
fn pass_on(mut message: Value, server: &str, prefixed: bool, out: &mut Vec<u8>) {
    if message.get("method").is_none() {
        return;
    }
    rename_updated(&mut message, server, prefixed);
    if let Some(id) = message.get("id") {
        message["id"] = relay::relayed_id(server, id);
    }
    write(&message, out);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn passed(message: Value, prefixed: bool) -> Option<Value> {
        let mut out = Vec::new();
        pass_on(message, "docs", prefixed, &mut out);
        let text = String::from_utf8(out).unwrap();
        let data = text.strip_prefix("event: message\ndata: ")?;
        Some(serde_json::from_str(data.trim_end()).unwrap())
    }

    #[test]
    fn a_subscription_hears_what_it_asked_for_under_its_tag() {
        let asked = json!({"notifications": {"toolsListChanged": true}});
        let filter = Filter::parse(asked.as_object().unwrap()).unwrap();
        let filter = filter.narrowed(true, ["file:///guide.md".to_owned()].into());
        let sub = Subscription {
            id: json!("listen-1"),
            ack: None,
            closed: false,
            opened: Vec::new(),
        };
        let heard = |message: Value| {
            let mut out = Vec::new();
            pass_subscribed(message, "docs", true, &filter, &sub, &mut out);
            let text = String::from_utf8(out).unwrap();
            let data = text.strip_prefix("event: message\ndata: ")?.to_owned();
            Some(serde_json::from_str::<Value>(data.trim_end()).unwrap())
        };
        let updated = heard(json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
            "params": {"uri": "file:///guide.md", "_meta": {subscription::SUBSCRIPTION_ID_KEY: 9}}}))
        .unwrap();
        assert_eq!(updated["params"]["uri"], "docs+file:///guide.md");
        assert_eq!(
            updated["params"]["_meta"][subscription::SUBSCRIPTION_ID_KEY],
            "listen-1"
        );
        let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        assert!(heard(changed).is_some());
        // Not asked for, the server's own acknowledgment, a request, a
        // response: none reach the client.
        for quiet in [
            json!({"jsonrpc": "2.0", "method": "notifications/prompts/list_changed"}),
            json!({"jsonrpc": "2.0", "method": subscription::ACKNOWLEDGED, "params": {}}),
            json!({"jsonrpc": "2.0", "id": 4, "method": "roots/list"}),
            json!({"jsonrpc": "2.0", "id": 4, "result": {}}),
        ] {
            assert_eq!(heard(quiet.clone()), None, "{quiet}");
        }
    }

    #[test]
    fn notifications_and_requests_go_on_under_the_clients_names() {
        let updated = json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
            "params": {"uri": "file:///guide.md"}});
        assert_eq!(
            passed(updated.clone(), true).unwrap()["params"]["uri"],
            "docs+file:///guide.md"
        );
        assert_eq!(
            passed(updated, false).unwrap()["params"]["uri"],
            "file:///guide.md"
        );
        let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        assert_eq!(passed(changed.clone(), true), Some(changed));
        let asked = json!({"jsonrpc": "2.0", "id": 4, "method": "roots/list"});
        let relayed = passed(asked, true).unwrap();
        assert_eq!(relay::origin(&relayed["id"]), Some(("docs", json!(4))));
        assert_eq!(
            passed(json!({"jsonrpc": "2.0", "id": 1, "result": {}}), true),
            None
        );
    }
}
