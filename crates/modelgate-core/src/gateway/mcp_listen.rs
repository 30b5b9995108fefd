//! A session client's standing event stream (`GET /mcp`, the handshake
//! era): its servers' own standing streams, merged, for what servers send
//! outside any call (a subscribed resource updated, a list changed, a
//! request of the client), a resource named as the client knows it, and a
//! ping while all are quiet. It ends when every server's has; dropping it
//! (the client gone) drops theirs.

use bytes::Bytes;
use futures_util::future::{Either, join_all, select, select_all};
use http::Method;
use serde_json::Value;

use super::Gateway;
use super::mcp_stream::write;
use super::mcp_upstream::sent_events;
use crate::codec::SseDecoder;
use crate::error::GatewayError;
use crate::mcp::session::Session;
use crate::mcp::{links, relay};
use crate::ports::{ByteStream, HttpClient, Ports};

/// A comment to the client after this long without an event, ms (proxies
/// end streams that stay quiet).
const PING_MS: u64 = 15_000;
/// Most bytes relayed from one server's stream; past it, that stream ends
/// (the client opens another).
const MAX_STREAM: usize = 64 * 1024 * 1024;

/// One server's standing stream.
struct Source<P: Ports> {
    server: String,
    body: Option<<P::Http as HttpClient>::Body>,
    decoder: SseDecoder,
    read: usize,
}

/// The client side of `GET /mcp`.
pub(crate) struct ListenStream<P: Ports> {
    gateway: Gateway<P>,
    sources: Vec<Source<P>>,
    /// Resources are named with their server (`/mcp`, not `/mcp/{server}`).
    prefixed: bool,
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
                    Some(Source {
                        server: s.name.clone(),
                        body: Some(sent.resp.into_body()),
                        decoder: SseDecoder::new(),
                        read: 0,
                    })
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
        }))
    }
}

impl<P: Ports> ListenStream<P> {
    /// The next events for the client (or a ping), `None` once every
    /// server's stream has ended.
    pub(super) async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            self.sources.retain(|s| s.body.is_some());
            if self.sources.is_empty() {
                return None;
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
            let mut out = Vec::new();
            while let Ok(Some(event)) = source.decoder.next_event() {
                if let Ok(message) = serde_json::from_str::<Value>(&event.data) {
                    pass_on(message, &source.server, self.prefixed, &mut out);
                }
            }
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
        }
    }
}

/// What of a server's standing stream goes to the client: its
/// notifications (a resource under the client's name for it) and its
/// requests (under a relayed id, answered by the client's POST); not a
/// response, which answers nothing of the client's.
fn pass_on(mut message: Value, server: &str, prefixed: bool, out: &mut Vec<u8>) {
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return;
    };
    if method == "notifications/resources/updated"
        && prefixed
        && let Some(uri) = message.pointer_mut("/params/uri")
        && let Some(own) = uri.as_str()
    {
        *uri = Value::String(links::exposed(server, own));
    }
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
