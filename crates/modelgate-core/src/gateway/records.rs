//! Key, model and MCP server records this instance has read, kept for
//! [`Config::record_cache_ms`](crate::Config::record_cache_ms), so a
//! request does not read both from the store every time.
//!
//! Only records are kept, never counters: quota, budget and rate limits
//! are decided by the store's (or Redis's) own statements whatever a
//! cached record says. An admin change made through this instance drops
//! what it could have changed at once; one made through another instance
//! (a replica, the CLI on the same file) is seen when the entry expires.
//! Absent keys and models are not kept, so a record created anywhere is
//! usable at once, and unknown keys cannot fill the cache.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::domain::{ApiKey, Model};
use crate::mcp::McpServer;

/// Entries per map at most: past it, expired entries go, then all.
const MAX_ENTRIES: usize = 10_000;

/// One map of records with their expiry (epoch ms), and how many times it
/// was cleared: a record read from the store before a clear is not kept
/// after it (it may be what the change replaced).
struct Entries<T>(Mutex<Map<T>>);

/// The clears so far, and each record by id with its expiry.
type Map<T> = (u64, HashMap<String, (i64, T)>);

/// When a lookup began: [`Records::key`]'s or [`Records::model`]'s answer
/// on a miss, handed back to keep what the store then answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Generation(u64);

impl<T: Clone> Entries<T> {
    fn new() -> Self {
        Self(Mutex::new((0, HashMap::new())))
    }

    fn lock(&self) -> MutexGuard<'_, Map<T>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: &str, now_ms: i64) -> Result<T, Generation> {
        let guard = self.lock();
        let (generation, map) = &*guard;
        map.get(id)
            .filter(|(until, _)| *until > now_ms)
            .map(|(_, t)| t.clone())
            .ok_or(Generation(*generation))
    }

    fn put(&self, id: &str, value: &T, read: Generation, until_ms: i64, now_ms: i64) {
        let mut guard = self.lock();
        let (generation, map) = &mut *guard;
        if *generation != read.0 {
            return;
        }
        if map.len() >= MAX_ENTRIES && !map.contains_key(id) {
            map.retain(|_, (until, _)| *until > now_ms);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(id.to_owned(), (until_ms, value.clone()));
    }

    fn clear(&self) {
        let mut guard = self.lock();
        guard.0 += 1;
        guard.1.clear();
    }
}

/// The cached records: keys by the hash they authenticate with, models by
/// name, the MCP servers as one list (every MCP request reads them all).
pub(super) struct Records {
    ttl_ms: i64,
    keys: Entries<ApiKey>,
    models: Entries<Model>,
    mcp_servers: Entries<Vec<McpServer>>,
}

impl Records {
    pub(super) fn new(ttl_ms: u64) -> Self {
        Self {
            ttl_ms: i64::try_from(ttl_ms).unwrap_or(i64::MAX),
            keys: Entries::new(),
            models: Entries::new(),
            mcp_servers: Entries::new(),
        }
    }

    /// The MCP servers, or when the lookup began.
    pub(super) fn mcp_servers(&self, now_ms: i64) -> Result<Vec<McpServer>, Generation> {
        self.mcp_servers.get("", now_ms)
    }

    /// Keep the MCP servers the store listed for a lookup that began at
    /// `read`.
    pub(super) fn keep_mcp_servers(&self, servers: &[McpServer], read: Generation, now_ms: i64) {
        if self.ttl_ms > 0 {
            let until = now_ms.saturating_add(self.ttl_ms);
            self.mcp_servers
                .put("", &servers.to_vec(), read, until, now_ms);
        }
    }

    /// After an MCP server was written here (its pins too).
    pub(super) fn mcp_servers_changed(&self) {
        self.mcp_servers.clear();
    }

    /// The key with this hash, or when the lookup began.
    pub(super) fn key(&self, hash: &str, now_ms: i64) -> Result<ApiKey, Generation> {
        self.keys.get(hash, now_ms)
    }

    /// Keep what the store answered for a lookup that began at `read`.
    pub(super) fn keep_key(&self, hash: &str, key: &ApiKey, read: Generation, now_ms: i64) {
        if self.ttl_ms > 0 {
            let until = now_ms.saturating_add(self.ttl_ms);
            self.keys.put(hash, key, read, until, now_ms);
        }
    }

    /// The model by this name, or when the lookup began.
    pub(super) fn model(&self, name: &str, now_ms: i64) -> Result<Model, Generation> {
        self.models.get(name, now_ms)
    }

    /// Keep what the store answered for a lookup that began at `read`.
    pub(super) fn keep_model(&self, name: &str, model: &Model, read: Generation, now_ms: i64) {
        if self.ttl_ms > 0 {
            let until = now_ms.saturating_add(self.ttl_ms);
            self.models.put(name, model, read, until, now_ms);
        }
    }

    /// After a key was written here: every key, since a patch names the
    /// key by id and the cache knows it by hash.
    pub(super) fn keys_changed(&self) {
        self.keys.clear();
    }

    /// After a model was written here (a rename changes two names).
    pub(super) fn models_changed(&self) {
        self.models.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str) -> Model {
        Model {
            id: name.into(),
            name: name.into(),
            backend: crate::BackendKind::Vllm,
            base_url: "http://u".into(),
            fallback_urls: vec![],
            upstream_model: "m".into(),
            api_key: None,
            enabled: true,
            stream_usage: false,
            responses_api: None,
            messages_api: None,
            deployments: vec![],
            prices: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn keep(r: &Records, name: &str, now_ms: i64) {
        let read = r.model(name, now_ms).unwrap_err();
        r.keep_model(name, &model(name), read, now_ms);
    }

    #[test]
    fn entries_expire_and_changes_drop_them() {
        let r = Records::new(1_000);
        keep(&r, "a", 10);
        assert_eq!(r.model("a", 1_009).map(|m| m.name).ok(), Some("a".into()));
        assert!(r.model("a", 1_010).is_err(), "expired");
        keep(&r, "a", 2_000);
        r.models_changed();
        assert!(r.model("a", 2_001).is_err(), "dropped by a change");
    }

    #[test]
    fn a_record_read_before_a_change_is_not_kept_after_it() {
        let r = Records::new(1_000);
        let read = r.model("a", 0).unwrap_err();
        r.models_changed();
        r.keep_model("a", &model("a"), read, 0);
        assert!(r.model("a", 1).is_err());
    }

    #[test]
    fn nothing_is_kept_without_a_ttl_and_the_maps_stay_bounded() {
        let off = Records::new(0);
        keep(&off, "a", 0);
        assert!(off.model("a", 0).is_err());
        let r = Records::new(1_000);
        for i in 0..MAX_ENTRIES + 5 {
            keep(&r, &format!("m{i}"), 0);
        }
        assert!(r.models.lock().1.len() <= MAX_ENTRIES);
        assert!(r.model(&format!("m{}", MAX_ENTRIES + 4), 1).is_ok());
    }
}
