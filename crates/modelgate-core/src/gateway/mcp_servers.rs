//! Upstream MCP servers in the admin API (`/admin/api/mcp/servers`):
//! create, list, read, patch, delete. Answers show header names, never
//! their values; URLs pass the same address policy as model `base_url`s,
//! commands the operator's list of programs.

use http::{Method, StatusCode};
use serde_json::json;

use super::admin::{check_id, parse_body};
use super::models::check_url;
use super::{Gateway, Response, json_response};
use crate::error::{GatewayError, RequestError, StoreError};
use crate::mcp::{McpServer, McpServerPatch, McpServerSpec};
use crate::ports::{HttpClient, McpServerStore, Ports};

/// How often a patch is applied again to a server that changed between
/// its read and its write (another admin's patch).
const PATCH_ATTEMPTS: usize = 8;

fn not_found() -> GatewayError {
    RequestError::NotFound("MCP server".into()).into()
}

impl<P: Ports> Gateway<P> {
    /// `/admin/api/mcp/servers[/{id}]` (`rest` is the path after `mcp/`).
    pub(super) async fn admin_mcp_servers(
        &self,
        rest: &[&str],
        method: &Method,
        body: &[u8],
    ) -> Result<Response<P>, GatewayError> {
        let answer = self.admin_mcp_route(rest, method, body).await;
        // After the write: a list read before it is not kept.
        if method != Method::GET {
            self.inner.records.mcp_servers_changed();
        }
        answer
    }

    /// The MCP servers, as this instance last read them (see
    /// [`super::records`]): every MCP request reads the list.
    pub(super) async fn mcp_server_list(&self) -> Result<Vec<McpServer>, GatewayError> {
        let now = self.now_ms();
        let records = &self.inner.records;
        match records.mcp_servers(now) {
            Ok(servers) => Ok(servers),
            Err(read) => {
                let servers = self.ports().store().list_mcp_servers().await?;
                records.keep_mcp_servers(&servers, read, now);
                Ok(servers)
            }
        }
    }

    async fn admin_mcp_route(
        &self,
        rest: &[&str],
        method: &Method,
        body: &[u8],
    ) -> Result<Response<P>, GatewayError> {
        match (rest, method) {
            (["servers"], &Method::POST) => self.create_mcp_server(body).await,
            (["servers"], &Method::GET) => {
                let servers = self.ports().store().list_mcp_servers().await?;
                let data: Vec<_> = servers.iter().map(McpServer::admin_view).collect();
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"object": "list", "data": data}),
                ))
            }
            (["servers", id], m) => {
                let id = check_id(id, "mcp_", "MCP server")?;
                match *m {
                    Method::GET => {
                        let s = self.ports().store().get_mcp_server(id).await?;
                        let s = s.ok_or_else(not_found)?;
                        Ok(json_response(StatusCode::OK, &s.admin_view()))
                    }
                    Method::PATCH => self.patch_mcp_server(id, parse_body(body)?).await,
                    Method::DELETE => {
                        if !self.ports().store().delete_mcp_server(id).await? {
                            return Err(not_found());
                        }
                        Ok(json_response(
                            StatusCode::OK,
                            &json!({"id": id, "object": "mcp_server", "deleted": true}),
                        ))
                    }
                    _ => Err(RequestError::MethodNotAllowed.into()),
                }
            }
            (["servers", id, "tools"], &Method::GET) => {
                let server = self.mcp_server_record(id).await?;
                self.admin_server_tools(&server).await
            }
            (["servers", id, "tools", "accept"], &Method::POST) => {
                let server = self.mcp_server_record(id).await?;
                self.accept_server_tools(&server).await
            }
            (["servers"], _) => Err(RequestError::MethodNotAllowed.into()),
            _ => Err(RequestError::NotFound("Admin route".into()).into()),
        }
    }

    async fn mcp_server_record(&self, id: &str) -> Result<McpServer, GatewayError> {
        let id = check_id(id, "mcp_", "MCP server")?;
        let s = self.ports().store().get_mcp_server(id).await?;
        s.ok_or_else(not_found)
    }

    /// Refuse a server the gateway would not call.
    fn check_mcp_server(&self, s: &McpServer) -> Result<(), GatewayError> {
        s.check(|name| self.config().secret_declared(name))
            .map_err(|e| RequestError::invalid(e.message, Some(e.param)))?;
        match s.command.first() {
            Some(program) if !self.ports().http().may_run(program) => {
                Err(RequestError::invalid(
                    format!(
                        "'{program}' is not a program this gateway runs: local (stdio) MCP servers run on the native server only, and only the programs its operator lists in MG_MCP_COMMANDS."
                    ),
                    Some("command"),
                )
                .into())
            }
            Some(_) => Ok(()),
            None => check_url(&s.url, "url", self.config().allow_link_local_upstreams),
        }
    }

    async fn create_mcp_server(&self, body: &[u8]) -> Result<Response<P>, GatewayError> {
        let spec: McpServerSpec = parse_body(body)?;
        let server = McpServer::from_spec(spec, self.new_id("mcp_"), self.now_ms());
        self.check_mcp_server(&server)?;
        self.ports().store().insert_mcp_server(&server).await?;
        Ok(json_response(StatusCode::CREATED, &server.admin_view()))
    }

    async fn patch_mcp_server(
        &self,
        id: &str,
        patch: McpServerPatch,
    ) -> Result<Response<P>, GatewayError> {
        let store = self.ports().store();
        for _ in 0..PATCH_ATTEMPTS {
            let current = store.get_mcp_server(id).await?.ok_or_else(not_found)?;
            let after = current.patched(patch.clone(), self.now_ms());
            self.check_mcp_server(&after)?;
            if store.replace_mcp_server(&current, &after).await? {
                return Ok(json_response(StatusCode::OK, &after.admin_view()));
            }
        }
        Err(StoreError::Unavailable("MCP server changed on every attempt".into()).into())
    }
}
