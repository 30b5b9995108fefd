//! Upstream MCP servers: the server's document under its id, and a name
//! item written in the same transaction, as for models.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use modelgate_core::error::StoreError;
use modelgate_core::mcp::McpServer;
use modelgate_core::ports::McpServerStore;
use serde::{Deserialize, Serialize};

use crate::{DynamoStore, Item, from_item, s, to_item, unavailable};

const MCP_SERVER: &str = "mcp_server";
const MCP_SERVER_NAME: &str = "mcp_server_name";

#[derive(Serialize, Deserialize, PartialEq)]
struct McpItem {
    name: String,
    doc: String,
    updated_at: i64,
}

impl McpItem {
    fn of(server: &McpServer) -> Result<Self, StoreError> {
        Ok(Self {
            name: server.name.clone(),
            doc: serde_json::to_string(server).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            updated_at: server.updated_at,
        })
    }
}

fn server_of(doc: String) -> Result<McpServer, StoreError> {
    serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn name_item(name: &str, id: &str) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(MCP_SERVER_NAME));
    item.insert("sk".into(), s(name));
    item.insert("server_id".into(), s(id));
    item
}

impl DynamoStore {
    async fn mcp_item(&self, id: &str) -> Result<Option<McpItem>, StoreError> {
        self.get(MCP_SERVER, id).await?.map(from_item).transpose()
    }
}

impl McpServerStore for DynamoStore {
    async fn list_mcp_servers(&self) -> Result<Vec<McpServer>, StoreError> {
        let mut servers: Vec<McpServer> = self
            .query_all(MCP_SERVER, None)
            .await?
            .into_iter()
            .map(|i| server_of(from_item::<McpItem>(i)?.doc))
            .collect::<Result<_, _>>()?;
        servers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(servers)
    }

    async fn get_mcp_server(&self, id: &str) -> Result<Option<McpServer>, StoreError> {
        self.mcp_item(id)
            .await?
            .map(|i| server_of(i.doc))
            .transpose()
    }

    async fn insert_mcp_server(&self, server: &McpServer) -> Result<(), StoreError> {
        let row = McpItem::of(server)?;
        let absent = "attribute_not_exists(pk)";
        let items = vec![
            self.put(to_item(MCP_SERVER, &server.id, &row)?, absent)?,
            self.put(name_item(&server.name, &server.id), absent)?,
        ];
        let what = format!("MCP server '{}'", server.name);
        match self.transact(items, &what).await {
            // A retried transaction finds its own first attempt (see
            // `insert_model`).
            Err(StoreError::Conflict(what)) => match self.mcp_item(&server.id).await? {
                Some(found) if found == row => Ok(()),
                _ => Err(StoreError::Conflict(what)),
            },
            other => other,
        }
    }

    async fn replace_mcp_server(
        &self,
        old: &McpServer,
        new: &McpServer,
    ) -> Result<bool, StoreError> {
        let row = McpItem::of(new)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(MCP_SERVER, &old.id, &row)?))
            .condition_expression("updated_at = :was")
            .expression_attribute_values(":was", crate::n(old.updated_at))
            .build()
            .map_err(unavailable)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if new.name != old.name {
            items.push(self.delete(MCP_SERVER_NAME, &old.name)?);
            items.push(self.put(name_item(&new.name, &old.id), "attribute_not_exists(pk)")?);
        }
        match self
            .transact(items, &format!("MCP server '{}'", new.name))
            .await
        {
            Ok(()) => Ok(true),
            // Either the server changed meanwhile (or a retry of this very
            // write landed), or the new name is taken: the stored version
            // tells which.
            Err(StoreError::Conflict(what)) => match self.mcp_item(&old.id).await? {
                Some(found) if found == row => Ok(true),
                Some(found) if found.updated_at == old.updated_at => {
                    Err(StoreError::Conflict(what))
                }
                _ => Ok(false),
            },
            Err(e) => Err(e),
        }
    }

    async fn delete_mcp_server(&self, id: &str) -> Result<bool, StoreError> {
        let Some(old) = self.mcp_item(id).await? else {
            return Ok(false);
        };
        let items = vec![
            self.delete(MCP_SERVER, id)?,
            self.delete(MCP_SERVER_NAME, &old.name)?,
        ];
        match self.transact(items, "MCP server changed").await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
