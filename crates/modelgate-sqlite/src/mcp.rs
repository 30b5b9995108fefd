//! Upstream MCP servers, with the shared statements of [`modelgate_sql`].

use modelgate_core::error::StoreError;
use modelgate_core::mcp::McpServer;
use modelgate_core::ports::McpServerStore;
use modelgate_sql::{self as sql, SqlValue};

use crate::SqliteStore;

fn doc(r: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
    r.get(0)
}

impl McpServerStore for SqliteStore {
    async fn list_mcp_servers(&self) -> Result<Vec<McpServer>, StoreError> {
        self.query_all(sql::LIST_MCP_SERVERS, &[], doc, sql::mcp_server)
    }

    async fn get_mcp_server(&self, id: &str) -> Result<Option<McpServer>, StoreError> {
        self.query_one(sql::GET_MCP_SERVER, id, doc, sql::mcp_server)
    }

    async fn insert_mcp_server(&self, server: &McpServer) -> Result<(), StoreError> {
        let args = sql::insert_mcp_server_params(server)?;
        self.execute(sql::INSERT_MCP_SERVER, &args)
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
            .execute(sql::REPLACE_MCP_SERVER, &args)
            .map_err(sql::mcp_conflict(&new.name))?;
        Ok(changed > 0)
    }

    async fn delete_mcp_server(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute(sql::DELETE_MCP_SERVER, &[SqlValue::Text(id.to_owned())])? > 0)
    }
}
