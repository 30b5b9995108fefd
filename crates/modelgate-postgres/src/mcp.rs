//! Upstream MCP servers, with the shared statements of [`modelgate_sql`].

use modelgate_core::error::StoreError;
use modelgate_core::mcp::McpServer;
use modelgate_core::ports::McpServerStore;
use modelgate_sql::postgres::numbered;
use modelgate_sql::{self as sql, Columns, SqlValue};

use crate::{Cols, PgStore};

fn doc(r: &Cols) -> Result<String, tokio_postgres::Error> {
    r.text(0)
}

impl McpServerStore for PgStore {
    async fn list_mcp_servers(&self) -> Result<Vec<McpServer>, StoreError> {
        let stmt = numbered(sql::LIST_MCP_SERVERS);
        self.read_all(&stmt, &[], doc, sql::mcp_server).await
    }

    async fn get_mcp_server(&self, id: &str) -> Result<Option<McpServer>, StoreError> {
        let args = [SqlValue::Text(id.to_owned())];
        let stmt = numbered(sql::GET_MCP_SERVER);
        Ok(self
            .read_all(&stmt, &args, doc, sql::mcp_server)
            .await?
            .pop())
    }

    async fn insert_mcp_server(&self, server: &McpServer) -> Result<(), StoreError> {
        let args = sql::insert_mcp_server_params(server)?;
        self.execute(&numbered(sql::INSERT_MCP_SERVER), &args)
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
            .execute(&numbered(sql::REPLACE_MCP_SERVER), &args)
            .await
            .map_err(sql::mcp_conflict(&new.name))?;
        Ok(changed > 0)
    }

    async fn delete_mcp_server(&self, id: &str) -> Result<bool, StoreError> {
        let args = [SqlValue::Text(id.to_owned())];
        Ok(self
            .execute(&numbered(sql::DELETE_MCP_SERVER), &args)
            .await?
            > 0)
    }
}
