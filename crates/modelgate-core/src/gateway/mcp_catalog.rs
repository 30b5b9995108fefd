//! Prompts and resources through the gateway, in both eras: listed from
//! every server the key may use as a whole, named as tools are
//! (`{server}_{prompt}`) or, for resources, with the server before the
//! URI's scheme (`{server}+{uri}`, still a URI, as agentgateway names
//! them), and routed back to the server by that name.

use futures_util::future::join_all;
use http::Method;
use serde_json::{Map, Value, json};

use super::mcp_answer::{not_served, relay, reply, session_ended};
use super::mcp_calls::Call;
use super::mcp_upstream::Failure;
use super::{Gateway, Response};
use crate::error::GatewayError;
use crate::mcp::McpServer;
use crate::mcp::access;
use crate::mcp::jsonrpc;
use crate::mcp::links;
use crate::mcp::modern::MODERN;
use crate::mcp::session::Upstream;
use crate::mcp::state::Binding;
use crate::ports::Ports;

/// What a catalog method is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prompts,
    Resources,
    Templates,
}

impl Kind {
    /// The kind a list method lists.
    fn listed_by(method: &str) -> Option<Self> {
        match method {
            "prompts/list" => Some(Self::Prompts),
            "resources/list" => Some(Self::Resources),
            "resources/templates/list" => Some(Self::Templates),
            _ => None,
        }
    }

    /// What one of its entries is called.
    fn noun(self) -> &'static str {
        match self {
            Self::Prompts => "prompt",
            Self::Resources | Self::Templates => "resource",
        }
    }

    fn list_method(self) -> &'static str {
        match self {
            Self::Prompts => "prompts/list",
            Self::Resources => "resources/list",
            Self::Templates => "resources/templates/list",
        }
    }

    /// The result's member holding the entries.
    fn field(self) -> &'static str {
        match self {
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resourceTemplates",
        }
    }

    /// The entry's member that names it.
    fn key(self) -> &'static str {
        match self {
            Self::Prompts => "name",
            Self::Resources => "uri",
            Self::Templates => "uriTemplate",
        }
    }

    /// What separates the server from its own name.
    fn separator(self) -> char {
        match self {
            Self::Prompts => '_',
            Self::Resources | Self::Templates => links::SEPARATOR,
        }
    }
}

/// What a request names, and where in its params: a prompt (`name`) or a
/// resource (`uri`), or for a completion its `ref`'s.
fn named_by(method: &str, params: &Value) -> (Kind, &'static str) {
    match method {
        "prompts/get" => (Kind::Prompts, "/name"),
        "completion/complete" if params.pointer("/ref/type") == Some(&json!("ref/prompt")) => {
            (Kind::Prompts, "/ref/name")
        }
        "completion/complete" => (Kind::Resources, "/ref/uri"),
        _ => (Kind::Resources, "/uri"),
    }
}

/// `name` as clients see it.
fn expose(kind: Kind, server: &str, name: &str) -> String {
    format!("{server}{}{name}", kind.separator())
}

impl<P: Ports> Gateway<P> {
    /// The servers the call may reach, each with its side of the session
    /// (none yet for a stateless client).
    pub(super) async fn reach_servers(
        &self,
        call: &Call<'_>,
    ) -> Result<Vec<(McpServer, Option<Upstream>)>, GatewayError> {
        Ok(match call.session {
            Some(session) => (self.session_servers(call.key, session).await?)
                .into_iter()
                .map(|(s, u)| (s, Some(u)))
                .collect(),
            None => (self.mcp_servers(call.key, call.only).await?)
                .into_iter()
                .map(|s| (s, None))
                .collect(),
        })
    }

    /// `server`'s side for one request: the session's, or one opened for
    /// this request alone (`true`: end it after).
    pub(super) async fn upstream_for(
        &self,
        server: &McpServer,
        upstream: Option<&Upstream>,
    ) -> Option<(Upstream, bool)> {
        match upstream {
            Some(u) => Some((u.clone(), false)),
            None => (self.open_upstream(server, MODERN, &Map::new()).await).map(|u| (u, true)),
        }
    }

    /// `prompts/list`, `resources/list`, `resources/templates/list`.
    pub(super) async fn mcp_catalog_list(
        &self,
        call: &Call<'_>,
        id: &Value,
        method: &str,
    ) -> Result<Response<P>, GatewayError> {
        let Some(kind) = Kind::listed_by(method) else {
            return Ok(reply(not_served(id, method), call.modern));
        };
        let reached = self.reach_servers(call).await?;
        let wholly = reached
            .into_iter()
            .filter(|(s, _)| access::allows_server(&call.key.allowed_tools, &s.name));
        let opened = join_all(wholly.map(|(s, u)| async move {
            let u = self.upstream_for(&s, u.as_ref()).await;
            (s, u)
        }))
        .await;
        let lists = join_all(opened.iter().filter_map(|(s, u)| {
            let (u, _) = u.as_ref()?;
            Some(async move {
                let list = self.server_list(s, u, kind.list_method(), kind.field());
                (s, list.await)
            })
        }))
        .await;
        let mut entries = Vec::new();
        for (server, list) in lists {
            match list {
                Ok(list) => entries.extend(list.into_iter().filter_map(|mut e| {
                    let own = e.get(kind.key())?.as_str()?;
                    let name = expose(kind, &server.name, own);
                    e[kind.key()] = Value::String(call.shown(&name, kind.separator()).to_owned());
                    Some(e)
                })),
                Err(Failure::SessionEnded) => return Ok(session_ended(id, &server.name)),
                Err(e) => tracing::warn!(server = server.name, "MCP {method} failed: {e:?}"),
            }
        }
        let ended: Vec<_> = opened
            .into_iter()
            .filter_map(|(s, u)| u.filter(|(_, once)| *once).map(|(u, _)| (s, u)))
            .collect();
        self.end_sessions(&ended).await;
        let mut result = Map::new();
        result.insert(kind.field().into(), Value::Array(entries));
        if call.modern {
            result.insert("ttlMs".into(), json!(0));
            result.insert("cacheScope".into(), json!("private"));
        }
        Ok(reply(
            jsonrpc::result(id, Value::Object(result)),
            call.modern,
        ))
    }

    /// `prompts/get`, `resources/read` and `completion/complete` (of a
    /// prompt's or a resource template's argument): to the server the
    /// name names.
    pub(super) async fn mcp_catalog_get(
        &self,
        call: &Call<'_>,
        id: Value,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<Response<P>, GatewayError> {
        let mut params = Value::Object(params);
        let (kind, at) = named_by(method, &params);
        let asked = params.pointer(at).and_then(Value::as_str);
        let exposed = call.canonical(asked.unwrap_or_default(), kind.separator());
        let asked = asked.unwrap_or_default().to_owned();
        let reached = self.reach_servers(call).await?;
        let target = exposed
            .split_once(kind.separator())
            .and_then(|(server, own)| {
                let (s, u) = reached.iter().find(|(s, _)| s.name == server)?;
                access::allows_server(&call.key.allowed_tools, server).then_some((s, u, own))
            });
        let Some((server, upstream, own)) = target else {
            let message = format!("Unknown {}: {asked}", kind.noun());
            let body = jsonrpc::error(&id, jsonrpc::INVALID_PARAMS, &message);
            return Ok(reply(body, call.modern));
        };
        if let Some(name) = params.pointer_mut(at) {
            *name = Value::String(own.to_owned());
        }
        let state = Binding {
            key_id: call.key.id.clone(),
            server: server.name.clone(),
            method: method.to_owned(),
            target: own.to_owned(),
        };
        if let Some(params) = params.as_object_mut()
            && let Err(refusal) = self.open_request_state(params, &state, &id)
        {
            return Ok(reply(refusal, call.modern));
        }
        let req =
            json!({"jsonrpc": "2.0", "id": self.upstream_id(), "method": method, "params": params});
        let Some((upstream, once)) = self.upstream_for(server, upstream.as_ref()).await else {
            let body = jsonrpc::error(
                &id,
                jsonrpc::INTERNAL_ERROR,
                &Failure::Unreachable.describe(&server.name),
            );
            return Ok(reply(body, call.modern));
        };
        let answer = self
            .mcp_exchange_with(
                server,
                Method::POST,
                Some(&upstream),
                Some(&req),
                &call.forwarded,
            )
            .await;
        if once {
            self.end_sessions(&[(server.clone(), upstream)]).await;
        }
        match answer {
            Ok(mut answer) => {
                let result = answer.response.as_mut().and_then(|r| r.get_mut("result"));
                if let Some(result) = result {
                    rename_contents(result, call, kind, &server.name);
                    self.seal_request_state(result, &state);
                }
                Ok(relay(answer, &id, call.sse, call.modern))
            }
            Err(Failure::SessionEnded) => Ok(session_ended(&id, &server.name)),
            Err(e) => {
                let body = jsonrpc::error(&id, jsonrpc::INTERNAL_ERROR, &e.describe(&server.name));
                Ok(reply(body, call.modern))
            }
        }
    }
}

/// A read's contents, each under the name the client knows its resource
/// by.
fn rename_contents(result: &mut Value, call: &Call<'_>, kind: Kind, server: &str) {
    let contents = result.get_mut("contents").and_then(Value::as_array_mut);
    for content in contents.into_iter().flatten() {
        if let Some(uri) = content.get("uri").and_then(Value::as_str) {
            let name = expose(kind, server, uri);
            content["uri"] = Value::String(call.shown(&name, '+').to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_named_as_tools_and_resources_keep_a_uri() {
        assert_eq!(expose(Kind::Prompts, "docs", "summarize"), "docs_summarize");
        assert_eq!(
            expose(Kind::Resources, "docs", "file:///a.txt"),
            "docs+file:///a.txt"
        );
        assert_eq!(
            expose(Kind::Templates, "docs", "greeting://{name}"),
            "docs+greeting://{name}"
        );
        assert_eq!(
            Kind::listed_by("resources/templates/list"),
            Some(Kind::Templates)
        );
        assert_eq!(Kind::listed_by("tools/list"), None);
    }
}
