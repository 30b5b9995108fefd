//! Keys: unique hashes by transaction, quota reservation by a condition on
//! `quota_left`, settlement as one idempotent transaction.

use aws_sdk_dynamodb::types::{Delete, ReturnValue, TransactWriteItem, Update};
use modelgate_core::domain::{ApiKey, Ask, Grant, KeyPatch, Lease, NewKey, Settlement};
use modelgate_core::error::StoreError;
use modelgate_core::ports::{Accounting, KeyStore};

use crate::counters::{Counter, Expr};
use crate::items::KeyItem;
use crate::usage::{record_item, record_pk_sk};
use crate::{
    DynamoStore, Item, cancelled_conditions, condition_failed, from_item, get_s, n, s, to_item,
    unavailable,
};

const KEY: &str = "key";
const KEY_HASH: &str = "key_hash";
const LEASE: &str = "lease";
/// One item per settled request id: what makes settling idempotent per
/// request id (the usage record's key holds its time, which a second
/// settlement of the same request, e.g. after an admin release, differs in).
const SETTLED: &str = "settled";

/// Optimistic rounds before a reservation or patch gives up (each lost
/// round means another writer moved the same key's counters).
const ROUNDS: usize = 64;

fn key_item(row: &KeyItem) -> Result<Item, StoreError> {
    let mut item = to_item(KEY, &row.id, row)?;
    item.insert("quota_left".into(), n(Counter::quota(row).left()));
    item.insert("budget_left".into(), n(Counter::budget(row).left()));
    Ok(item)
}

impl DynamoStore {
    async fn key_row(&self, id: &str) -> Result<Option<KeyItem>, StoreError> {
        self.get(KEY, id).await?.map(from_item).transpose()
    }
}

impl KeyStore for DynamoStore {
    async fn find_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some(link) = self.get(KEY_HASH, hash).await? else {
            return Ok(None);
        };
        self.get_key(get_s(&link, "key_id")?).await
    }

    async fn insert_key(&self, new: NewKey) -> Result<ApiKey, StoreError> {
        let row = KeyItem::of(&new.key);
        let mut link = Item::new();
        link.insert("pk".into(), s(KEY_HASH));
        link.insert("sk".into(), s(row.key_hash.expose()));
        link.insert("key_id".into(), s(&row.id));
        let absent = "attribute_not_exists(pk)";
        let written = self
            .client
            .transact_write_items()
            .transact_items(self.put(key_item(&row)?, absent)?)
            .transact_items(self.put(link, absent)?)
            .send()
            .await;
        match written {
            Ok(_) => row.into_key(),
            // A retried attempt finding the first one's items (see
            // `insert_model`): a key under this fresh id can only be this one.
            Err(e) if cancelled_conditions(&e).is_some_and(|c| !c.is_empty()) => {
                match self.key_row(&row.id).await? {
                    Some(found) if found.key_hash.expose() == row.key_hash.expose() => {
                        row.into_key()
                    }
                    _ => Err(StoreError::Conflict("A record with that name".into())),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.key_row(id).await?.map(KeyItem::into_key).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut rows: Vec<KeyItem> = self
            .query_all(KEY, None)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        rows.into_iter().map(KeyItem::into_key).collect()
    }

    async fn update_key(
        &self,
        id: &str,
        patch: KeyPatch,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        for _ in 0..ROUNDS {
            let Some(row) = self.key_row(id).await? else {
                return Ok(None);
            };
            let mut key = row.clone().into_key()?;
            patch.clone().apply(&mut key, now_ms);
            let after = KeyItem::of(&key);
            // `*_left` are set from what was read: nothing may have moved.
            let mut u = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(KEY))
                .key("sk", s(id))
                .condition_expression(
                    "quota_used = :used0 AND quota_reserved = :reserved0 \
                     AND (attribute_not_exists(budget_used_nanos) OR budget_used_nanos = :bused0) \
                     AND (attribute_not_exists(budget_reserved_nanos) \
                       OR budget_reserved_nanos = :breserved0)",
                )
                .expression_attribute_values(":used0", n(row.quota_used))
                .expression_attribute_values(":reserved0", n(row.quota_reserved))
                .expression_attribute_values(":bused0", n(row.budget_used_nanos))
                .expression_attribute_values(":breserved0", n(row.budget_reserved_nanos))
                .return_values(ReturnValue::AllNew);
            // Only what the patch changed is written: a concurrent write of
            // another attribute (`last_used_at`) stands.
            let mut sets = Vec::new();
            let before = to_item(KEY, id, &row)?;
            for (i, (name, value)) in to_item(KEY, id, &after)?.into_iter().enumerate() {
                if before.get(&name) == Some(&value) {
                    continue;
                }
                sets.push(format!("#c{i} = :c{i}"));
                u = u
                    .expression_attribute_names(format!("#c{i}"), name)
                    .expression_attribute_values(format!(":c{i}"), value);
            }
            sets.push("quota_left = :left, budget_left = :bleft".into());
            u = u
                .expression_attribute_values(":left", n(Counter::quota(&after).left()))
                .expression_attribute_values(":bleft", n(Counter::budget(&after).left()))
                .update_expression(format!("SET {}", sets.join(", ")));
            match u.send().await {
                Ok(out) => {
                    let item = out.attributes.unwrap_or_default();
                    return from_item::<KeyItem>(item)?.into_key().map(Some);
                }
                Err(e) if condition_failed(&e) => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Unavailable(
            "key update kept conflicting".into(),
        ))
    }
}

impl Accounting for DynamoStore {
    async fn reserve(&self, lease: &Lease, ask: &Ask) -> Result<Option<Grant>, StoreError> {
        let key_id = lease.key_id.as_str();
        for _ in 0..ROUNDS {
            let Some(row) = self.key_row(key_id).await? else {
                return Ok(None);
            };
            let (quota, budget) = (Counter::quota(&row), Counter::budget(&row));
            let grants = (
                quota.grant(ask.tokens.0, ask.tokens.1, ask.quota_window),
                budget.grant(ask.money.0, ask.money.1, ask.budget_window),
            );
            let (Some(tokens), Some(money)) = grants else {
                return Ok(None);
            };
            if quota.limit.is_none() && budget.limit.is_none() {
                return Ok(Some(Grant { tokens, money }));
            }
            // Safe against every concurrent writer: the conditions hold
            // each grant to what is left at the moment of the write. The
            // lease is written in the same transaction.
            let mut expr = Expr::default();
            expr.reserve(&quota, tokens, ask.quota_window);
            expr.reserve(&budget, money, ask.budget_window);
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(KEY))
                .key("sk", s(key_id))
                .update_expression(expr.update())
                .condition_expression(expr.condition())
                .set_expression_attribute_values(Some(expr.values.into_iter().collect()))
                .build()
                .map_err(unavailable)?;
            let held = Lease {
                amount: tokens,
                money,
                ..lease.clone()
            };
            let put = self.put(
                to_item(LEASE, &lease.request_id, &held)?,
                "attribute_not_exists(pk)",
            )?;
            let reserved = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .transact_items(put)
                .send()
                .await;
            match reserved {
                Ok(_) => return Ok(Some(Grant { tokens, money })),
                // The lease is there already: a retried attempt (see
                // `insert_key`) found the first one's reservation, which
                // holds; it is this request's, whatever this round's grant.
                Err(e) if cancelled_conditions(&e).is_some_and(|c| c.contains(&1)) => {
                    if let Some(item) = self.get(LEASE, &lease.request_id).await? {
                        let l = from_item::<Lease>(item)?;
                        return Ok(Some(Grant {
                            tokens: l.amount,
                            money: l.money,
                        }));
                    }
                }
                // Another writer moved the counters first (or the
                // transaction conflicted with one): another round.
                Err(e) if cancelled_conditions(&e).is_some() => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Unavailable(
            "quota reservation kept conflicting".into(),
        ))
    }

    async fn settle(&self, st: &Settlement) -> Result<(), StoreError> {
        let (pk, sk) = record_pk_sk(&st.usage);
        for _ in 0..ROUNDS {
            let Some(row) = self.key_row(&st.key_id).await? else {
                // The key is gone: keep the usage record all the same.
                return self.record_only(&pk, &sk, st).await;
            };
            let mut expr = Expr::default();
            expr.settle(
                &Counter::quota(&row),
                st.reserved,
                st.charge(),
                st.quota_window,
            );
            expr.settle(
                &Counter::budget(&row),
                st.reserved_money,
                st.charge_money(),
                st.budget_window,
            );
            expr.set("last_used_at = :at".into());
            expr.values.push((":at".into(), n(st.usage.created_at)));
            let charge = Update::builder()
                .table_name(&self.table)
                .key("pk", s(KEY))
                .key("sk", s(&st.key_id))
                .update_expression(expr.update())
                .condition_expression(expr.condition())
                .set_expression_attribute_values(Some(expr.values.into_iter().collect()))
                .build()
                .map_err(unavailable)?;
            let record = self.put(
                record_item(&pk, &sk, &st.usage)?,
                "attribute_not_exists(pk)",
            )?;
            let written = self
                .client
                .transact_write_items()
                .transact_items(self.settled_marker(&st.usage.request_id)?)
                .transact_items(record)
                .transact_items(TransactWriteItem::builder().update(charge).build())
                .transact_items(self.end_lease(&st.usage.request_id)?)
                .send()
                .await;
            match written {
                Ok(_) => return Ok(()),
                // The marker or the record exists: this request was settled.
                Err(e)
                    if cancelled_conditions(&e)
                        .is_some_and(|c| c.contains(&0) || c.contains(&1)) =>
                {
                    return Ok(());
                }
                // The key's counters moved (or it is gone): read again.
                Err(e) if cancelled_conditions(&e).is_some() => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Unavailable(
            "settlement kept conflicting".into(),
        ))
    }

    async fn leases(&self, expired_by: Option<i64>) -> Result<Vec<Lease>, StoreError> {
        let mut leases = self
            .query_all(LEASE, None)
            .await?
            .into_iter()
            .map(from_item::<Lease>)
            .collect::<Result<Vec<_>, _>>()?;
        leases.retain(|l| expired_by.is_none_or(|t| l.expires_at <= t));
        leases.sort_by_key(|l| (l.created_at, l.expires_at));
        Ok(leases)
    }
}

impl DynamoStore {
    /// A transaction item marking `request_id` settled, if it is not yet.
    fn settled_marker(&self, request_id: &str) -> Result<TransactWriteItem, StoreError> {
        let mut item = Item::new();
        item.insert("pk".into(), s(SETTLED));
        item.insert("sk".into(), s(request_id));
        self.put(item, "attribute_not_exists(pk)")
    }

    /// A transaction item ending the lease of `request_id` (if any).
    fn end_lease(&self, request_id: &str) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(LEASE))
            .key("sk", s(request_id))
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// The key is gone: the usage record alone (once), and the lease ended.
    async fn record_only(&self, pk: &str, sk: &str, st: &Settlement) -> Result<(), StoreError> {
        let rid = &st.usage.request_id;
        let written = self
            .client
            .transact_write_items()
            .transact_items(self.settled_marker(rid)?)
            .transact_items(self.put(record_item(pk, sk, &st.usage)?, "attribute_not_exists(pk)")?)
            .transact_items(self.end_lease(rid)?)
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            // Settled before: the marker or the record exists.
            Err(e)
                if cancelled_conditions(&e).is_some_and(|c| c.contains(&0) || c.contains(&1)) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
