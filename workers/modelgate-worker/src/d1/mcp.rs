//! Upstream MCP servers in D1, with the shared statements of
//! [`modelgate_sql`].

use modelgate_core::error::StoreError;
use modelgate_core::mcp::McpServer;
use modelgate_core::ports::McpServerStore;
use modelgate_sql::{self as sql, SqlValue};
use serde::Deserialize;

use super::D1Store;

#[derive(Deserialize)]
struct Doc {
    doc: String,
}

impl D1Store {
    async fn mcp_servers(
        &self,
        stmt: &str,
        args: &[SqlValue],
    ) -> Result<Vec<McpServer>, StoreError> {
        let rows: Vec<Doc> = self.rows(stmt, args).await?;
        rows.into_iter().map(|r| sql::mcp_server(r.doc)).collect()
    }
}

impl McpServerStore for D1Store {
    async fn list_mcp_servers(&self) -> Result<Vec<McpServer>, StoreError> {
        self.mcp_servers(sql::LIST_MCP_SERVERS, &[]).await
    }

    async fn get_mcp_server(&self, id: &str) -> Result<Option<McpServer>, StoreError> {
        let args = [SqlValue::Text(id.to_owned())];
        Ok(self.mcp_servers(sql::GET_MCP_SERVER, &args).await?.pop())
    }

    async fn insert_mcp_server(&self, server: &McpServer) -> Result<(), StoreError> {
        let args = sql::insert_mcp_server_params(server)?;
        self.changes(sql::INSERT_MCP_SERVER, &args)
            .await
            .map_err(sql::mcp_conflict(&server.name))?;
        Ok(())
    }

    async fn replace_mcp_server(
        &self,
        old: &McpServer,
        new: &McpServer,
    ) -> Result<bool, StoreError> {
        let args = sql::replace_mcp_server_params(old, new)?;
        let changed = self
            .changes(sql::REPLACE_MCP_SERVER, &args)
            .await
            .map_err(sql::mcp_conflict(&new.name))?;
        Ok(changed > 0)
    }

    async fn delete_mcp_server(&self, id: &str) -> Result<bool, StoreError> {
        let args = [SqlValue::Text(id.to_owned())];
        Ok(self.changes(sql::DELETE_MCP_SERVER, &args).await? > 0)
    }
}
