//! A stateless client's `subscriptions/listen` through the gateway: each
//! server the key may use is asked for what the client asked to hear of
//! it, in the server's era (its own `subscriptions/listen`, acknowledged
//! before the client's is; or, for a server with sessions, a session of
//! the subscription's own with its standing stream and `resources/subscribe`
//! for each resource), and their streams become the client's
//! ([`super::mcp_listen`]).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use http::Method;
use serde_json::{Map, Value, json};

use super::mcp_answer::{event_stream, reply};
use super::mcp_calls::Call;
use super::mcp_listen::{ListenStream, Source, Subscription};
use super::mcp_upstream::sent_events;
use super::{Gateway, Response};
use crate::error::GatewayError;
use crate::mcp::modern::MODERN;
use crate::mcp::session::Upstream;
use crate::mcp::subscription::{self, Filter};
use crate::mcp::{McpServer, access, jsonrpc, links};
use crate::ports::Ports;

/// One server's part of a subscription.
struct Opened<P: Ports> {
    source: Option<Source<P>>,
    /// A session opened for it, to end with it.
    session: Option<(McpServer, Upstream)>,
}

impl<P: Ports> Gateway<P> {
    pub(super) async fn mcp_subscribe(
        &self,
        call: &Call<'_>,
        id: Value,
        params: &Map<String, Value>,
    ) -> Result<Response<P>, GatewayError> {
        let filter = match Filter::parse(params) {
            Ok(f) => f,
            Err(message) => {
                let body = jsonrpc::error(&id, jsonrpc::INVALID_PARAMS, &message);
                return Ok(reply(body, true));
            }
        };
        if !call.sse {
            let message = "subscriptions/listen answers with an event stream: \
                           accept text/event-stream.";
            return Ok(reply(
                jsonrpc::error(&id, jsonrpc::INVALID_REQUEST, message),
                true,
            ));
        }
        let servers = self.mcp_servers(call.key, call.only).await?;
        // Each resource by its server and the server's own URI; one the
        // key may not read is not heard of.
        let mut own: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut honored = BTreeSet::new();
        for uri in &filter.uris {
            let name = call.canonical(uri, links::SEPARATOR);
            let Some((server, own_uri)) = name.split_once(links::SEPARATOR) else {
                continue;
            };
            let Some(s) = servers.iter().find(|s| s.name == server) else {
                continue;
            };
            if access::allows_server(&call.key.allowed_tools, server) {
                own.entry(&s.name).or_default().insert(own_uri.to_owned());
                honored.insert(uri.clone());
            }
        }
        let opened = join_all(servers.iter().map(|s| {
            let whole = access::allows_server(&call.key.allowed_tools, &s.name);
            let uris = own.get(s.name.as_str()).cloned().unwrap_or_default();
            self.subscribe_upstream(s, filter.narrowed(whole, uris))
        }))
        .await;
        let mut sources = Vec::new();
        let mut sessions = Vec::new();
        for o in opened {
            sources.extend(o.source);
            sessions.extend(o.session);
        }
        let ack = subscription::acknowledged(&id, filter.with_uris(honored).wire());
        let sub = Subscription {
            id,
            ack: Some(ack),
            closed: false,
            opened: sessions,
        };
        let stream = ListenStream::subscribed(self, sources, call.only.is_none(), sub);
        Ok(event_stream(stream))
    }

    /// `server`'s stream of what `filter` asks of it, in its era; none if
    /// it cannot be reached or has none.
    async fn subscribe_upstream(&self, server: &McpServer, filter: Filter) -> Opened<P> {
        let mut opened = Opened {
            source: None,
            session: None,
        };
        let Some(upstream) = self.open_upstream(server, MODERN, &Map::new()).await else {
            return opened;
        };
        if upstream.version == MODERN {
            let req = json!({"jsonrpc": "2.0", "id": self.upstream_id(),
                "method": "subscriptions/listen", "params": {"notifications": filter.wire()}});
            let sent = self
                .mcp_send(server, Method::POST, Some(&upstream), Some(&req), &[])
                .await;
            if let Ok(sent) = sent
                && sent.resp.status().is_success()
                && sent_events(&sent.resp)
            {
                let deadline = sent.deadline;
                let mut source = Source::new(&server.name, sent.resp.into_body(), Some(filter));
                // What happens after the client's acknowledgment must
                // reach it: the server's comes first.
                if source.acknowledged(self, deadline).await {
                    opened.source = Some(source);
                }
            }
            return opened;
        }
        let sent = self
            .mcp_send(server, Method::GET, Some(&upstream), None, &[])
            .await;
        if let Ok(sent) = sent
            && sent.resp.status().is_success()
            && sent_events(&sent.resp)
        {
            for uri in &filter.uris {
                let req = json!({"jsonrpc": "2.0", "id": self.upstream_id(),
                    "method": "resources/subscribe", "params": {"uri": uri}});
                if let Err(e) = self
                    .mcp_exchange(server, Method::POST, Some(&upstream), Some(&req))
                    .await
                {
                    tracing::warn!(server = server.name, "MCP resource not subscribed: {e:?}");
                }
            }
            opened.source = Some(Source::new(
                &server.name,
                sent.resp.into_body(),
                Some(filter),
            ));
        }
        opened.session = Some((server.clone(), upstream));
        opened
    }
}
