//! Whether each MCP server speaks the stateless era, as this instance last
//! found out: a stateless client's request then goes to the server without
//! asking its `server/discover` first (the spec's advice: cache the era per
//! server), for a minute; a server an admin changed is asked again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::mcp::McpServer;

/// How long what a server said of its eras is believed, ms.
const TTL_MS: i64 = 60_000;
/// Most servers remembered (past it, all are asked again).
const MAX_SERVERS: usize = 1024;

/// By server (its id and when it last changed): whether it speaks the
/// stateless era, and until when that is believed.
#[derive(Default)]
pub(super) struct Eras(Mutex<HashMap<String, (bool, i64)>>);

impl Eras {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (bool, i64)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn key(server: &McpServer) -> String {
        format!("{}@{}", server.id, server.updated_at)
    }

    /// Whether `server` speaks the stateless era, if known.
    pub(super) fn stateless(&self, server: &McpServer, now_ms: i64) -> Option<bool> {
        let known = self.lock().get(&Self::key(server)).copied();
        known.filter(|(_, until)| now_ms < *until).map(|(s, _)| s)
    }

    /// Remember what `server` said.
    pub(super) fn keep(&self, server: &McpServer, stateless: bool, now_ms: i64) {
        let mut eras = self.lock();
        if eras.len() >= MAX_SERVERS {
            eras.clear();
        }
        eras.insert(Self::key(server), (stateless, now_ms + TTL_MS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_era_is_believed_for_a_while_and_until_the_server_changes() {
        let eras = Eras::default();
        let mut server: McpServer = serde_json::from_value(serde_json::json!({
            "id": "mcp_1", "name": "docs", "enabled": true, "timeout_ms": 1000,
            "created_at": 1, "updated_at": 5}))
        .unwrap();
        assert_eq!(eras.stateless(&server, 0), None);
        eras.keep(&server, true, 1_000);
        assert_eq!(eras.stateless(&server, 1_000 + TTL_MS - 1), Some(true));
        assert_eq!(eras.stateless(&server, 1_000 + TTL_MS), None);
        eras.keep(&server, false, 2_000);
        assert_eq!(eras.stateless(&server, 2_001), Some(false));
        server.updated_at = 6;
        assert_eq!(eras.stateless(&server, 2_001), None);
    }
}
