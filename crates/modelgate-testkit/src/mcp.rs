//! Store conformance for upstream MCP servers: the document round-trips
//! with its header values and a command's environment, names are unique,
//! and a change holds only on the version it was made from.

use std::collections::BTreeMap;
use std::sync::Arc;

use modelgate_core::error::StoreError;
use modelgate_core::mcp::McpServer;
use modelgate_core::ports::{Accounting, Store};

use crate::subject::Subject;

/// A server `id` named `name`, with a credential header.
pub fn mcp_server(id: &str, name: &str) -> McpServer {
    McpServer {
        id: id.into(),
        name: name.into(),
        url: format!("https://{name}.example/mcp"),
        headers: BTreeMap::from([("Authorization".into(), "Bearer env:TOKEN".into())]),
        command: vec![],
        env: BTreeMap::new(),
        enabled: true,
        timeout_ms: 30_000,
        rpm: Some(60),
        pins: BTreeMap::from([("echo".into(), "ab".repeat(32))]),
        created_at: 5,
        updated_at: 5,
    }
}

/// Insert, read, list by name, unique names, versioned replacement
/// (renames included), delete.
pub async fn mcp_servers_roundtrip<S: Store, A: Accounting>(s: Arc<Subject<S, A>>) {
    let github = mcp_server("mcp_1", "github");
    s.insert_mcp_server(&github).await.unwrap();
    // A local server: its command and environment are kept too.
    let mut docs = mcp_server("mcp_0", "docs");
    docs.url = String::new();
    docs.headers.clear();
    docs.command = vec!["node".into(), "docs.js".into()];
    docs.env = BTreeMap::from([("TOKEN".into(), "env:TOKEN".into())]);
    s.insert_mcp_server(&docs).await.unwrap();
    assert_eq!(s.get_mcp_server("mcp_0").await.unwrap(), Some(docs));
    assert_eq!(
        s.get_mcp_server("mcp_1").await.unwrap(),
        Some(github.clone())
    );
    assert_eq!(s.get_mcp_server("mcp_9").await.unwrap(), None);
    let names = |l: Vec<McpServer>| l.into_iter().map(|m| m.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_mcp_servers().await.unwrap()),
        ["docs", "github"]
    );
    assert!(matches!(
        s.insert_mcp_server(&mcp_server("mcp_2", "github")).await,
        Err(StoreError::Conflict(_))
    ));

    let mut renamed = github.clone();
    renamed.name = "gh".into();
    renamed.enabled = false;
    renamed.updated_at = 6;
    assert!(s.replace_mcp_server(&github, &renamed).await.unwrap());
    assert_eq!(
        s.get_mcp_server("mcp_1").await.unwrap(),
        Some(renamed.clone())
    );
    // A change made from the version before is refused, not applied.
    let mut stale = github.clone();
    stale.timeout_ms = 1_000;
    stale.updated_at = 7;
    assert!(!s.replace_mcp_server(&github, &stale).await.unwrap());
    // The old name is free again; a rename onto a taken one conflicts.
    s.insert_mcp_server(&mcp_server("mcp_3", "github"))
        .await
        .unwrap();
    let mut taken = renamed.clone();
    taken.name = "docs".into();
    taken.updated_at = 8;
    assert!(matches!(
        s.replace_mcp_server(&renamed, &taken).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_mcp_server("mcp_1").await.unwrap(), Some(renamed));

    assert!(s.delete_mcp_server("mcp_1").await.unwrap());
    assert!(!s.delete_mcp_server("mcp_1").await.unwrap());
    let gone = mcp_server("mcp_1", "gh");
    assert!(!s.replace_mcp_server(&gone, &gone).await.unwrap());
    assert_eq!(
        names(s.list_mcp_servers().await.unwrap()),
        ["docs", "github"]
    );
    // The name of a deleted server can be taken again.
    s.insert_mcp_server(&mcp_server("mcp_4", "gh"))
        .await
        .unwrap();
}
