//! Upstream MCP servers: one JSON document a row, under its id and its
//! unique name.

use modelgate_core::error::StoreError;
use modelgate_core::mcp::McpServer;

use crate::{SqlValue, int, text};

/// All servers' documents, by name.
pub const LIST_MCP_SERVERS: &str = "SELECT doc FROM mcp_servers ORDER BY name";
/// One server's document by id.
pub const GET_MCP_SERVER: &str = "SELECT doc FROM mcp_servers WHERE id = ?1";
/// Insert: with [`insert_mcp_server_params`].
pub const INSERT_MCP_SERVER: &str =
    "INSERT INTO mcp_servers (id, name, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)";
/// Replace if unchanged since read: with [`replace_mcp_server_params`].
pub const REPLACE_MCP_SERVER: &str = "UPDATE mcp_servers SET name = ?2, doc = ?3, updated_at = ?4 \
     WHERE id = ?1 AND updated_at = ?5";
/// Delete by id.
pub const DELETE_MCP_SERVER: &str = "DELETE FROM mcp_servers WHERE id = ?1";

fn doc(s: &McpServer) -> Result<SqlValue, StoreError> {
    serde_json::to_string(s)
        .map(SqlValue::Text)
        .map_err(|e| StoreError::Unavailable(format!("MCP server not serialisable: {e}")))
}

/// The parameters of [`INSERT_MCP_SERVER`].
pub fn insert_mcp_server_params(s: &McpServer) -> Result<Vec<SqlValue>, StoreError> {
    Ok(vec![
        text(&s.id),
        text(&s.name),
        doc(s)?,
        int(s.created_at),
        int(s.updated_at),
    ])
}

/// The parameters of [`REPLACE_MCP_SERVER`]: `new` where `old` still is.
pub fn replace_mcp_server_params(
    old: &McpServer,
    new: &McpServer,
) -> Result<Vec<SqlValue>, StoreError> {
    Ok(vec![
        text(&old.id),
        text(&new.name),
        doc(new)?,
        int(new.updated_at),
        int(old.updated_at),
    ])
}

/// A server from its stored document.
pub fn mcp_server(doc: String) -> Result<McpServer, StoreError> {
    serde_json::from_str(&doc)
        .map_err(|e| StoreError::Unavailable(format!("stored MCP server unreadable: {e}")))
}

/// A unique-name failure names the server.
pub fn mcp_conflict(name: &str) -> impl Fn(StoreError) -> StoreError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!("MCP server '{name}'")),
        other => other,
    }
}
