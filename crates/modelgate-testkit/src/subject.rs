//! What the conformance suite tests: a store with its counters, the store's
//! own or counters in front of it, reached the way the gateway reaches
//! them (key records from the store, counters from the accounts, each
//! admin write of a key passed on to the counters).

use std::ops::Deref;
use std::sync::Arc;

use modelgate_core::domain::{ApiKey, Ask, Grant, KeyPatch, Lease, NewKey, Settlement};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{Accounting, Store};

/// A store `S` and its accounts `A`. Models, usage and responses are the
/// store's (through `Deref`).
#[derive(Debug)]
pub struct Subject<S, A = Arc<S>> {
    store: Arc<S>,
    accounts: A,
}

impl<S: Store> Subject<S> {
    /// A store that keeps its own counters.
    pub fn own(store: S) -> Self {
        let store = Arc::new(store);
        Self {
            accounts: Arc::clone(&store),
            store,
        }
    }
}

impl<S, A> Deref for Subject<S, A> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.store
    }
}

impl<S: Store, A: Accounting> Subject<S, A> {
    /// `accounts` in front of `store`.
    pub fn new(store: Arc<S>, accounts: A) -> Self {
        Self { store, accounts }
    }

    /// Create a key, then its counters.
    pub async fn insert_key(&self, key: NewKey) -> Result<ApiKey, StoreError> {
        let k = self.store.insert_key(key).await?;
        self.accounts.key_written(&k, (true, true)).await?;
        Ok(k)
    }

    /// A key with its live counters.
    pub async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        match self.store.get_key(id).await? {
            Some(k) => Ok(self.accounts.live(vec![k]).await.pop()),
            None => Ok(None),
        }
    }

    /// All keys with their live counters.
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self.accounts.live(self.store.list_keys().await?).await)
    }

    /// Patch a key's record, then its counters.
    pub async fn update_key(
        &self,
        id: &str,
        patch: KeyPatch,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        let (reset, counts) = (patch.resets(), patch.touches_counters());
        let k = self.store.update_key(id, patch, now_ms).await?;
        if let Some(k) = k.as_ref().filter(|_| counts) {
            self.accounts.key_written(k, reset).await?;
        }
        Ok(k)
    }

    /// [`Accounting::reserve`].
    pub async fn reserve(&self, lease: &Lease, ask: &Ask) -> Result<Option<Grant>, StoreError> {
        self.accounts.reserve(lease, ask).await
    }

    /// [`Accounting::reserve_quota`].
    pub async fn reserve_quota(
        &self,
        lease: &Lease,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.accounts.reserve_quota(lease, min, max).await
    }

    /// [`Accounting::settle`].
    pub async fn settle(&self, s: &Settlement) -> Result<(), StoreError> {
        self.accounts.settle(s).await
    }

    /// [`Accounting::leases`].
    pub async fn leases(&self, expired_by: Option<i64>) -> Result<Vec<Lease>, StoreError> {
        self.accounts.leases(expired_by).await
    }
}
