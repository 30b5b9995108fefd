//! Stored Responses: one item per response under its own partition (no
//! hot key), and a summary item per response under its key's partition
//! (`responses_of#{key}`, sorted by time) for the admin's list; both written
//! and deleted in one transaction, expired by DynamoDB's TTL on `ttl`
//! (epoch seconds; the SAM template enables it) and filtered out of every
//! read from `expires_at`.

use aws_sdk_dynamodb::types::{Put, TimeToLiveSpecification, TransactWriteItem};
use modelgate_core::domain::{ResponseSummary, StoredResponse};
use modelgate_core::error::StoreError;
use modelgate_core::ports::ResponseStore;

use crate::{DynamoStore, Item, from_item, n, s, to_item, unavailable};

const SK: &str = "response";

fn pk(id: &str) -> String {
    format!("response#{id}")
}

/// Where a key's summaries live, and a summary's place among them.
fn index_pk_sk(key_id: &str, created_at: i64, id: &str) -> (String, String) {
    (
        format!("responses_of#{key_id}"),
        format!("{created_at:013}#{id}"),
    )
}

fn with_ttl(mut item: Item, expires_at: i64) -> Item {
    item.insert("ttl".into(), n(expires_at.div_euclid(1000) + 1));
    item
}

impl DynamoStore {
    /// Turn on TTL deletion by `ttl` for a table this store created.
    pub(crate) async fn enable_ttl(&self) -> Result<(), StoreError> {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name("ttl")
            .enabled(true)
            .build()
            .map_err(unavailable)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl ResponseStore for DynamoStore {
    async fn put_response(&self, response: &StoredResponse) -> Result<(), StoreError> {
        let item = with_ttl(
            to_item(&pk(&response.id), SK, response)?,
            response.expires_at,
        );
        let (ipk, isk) = index_pk_sk(&response.key_id, response.created_at, &response.id);
        let index = with_ttl(
            to_item(&ipk, &isk, &response.summary())?,
            response.expires_at,
        );
        let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(unavailable)?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        self.client
            .transact_write_items()
            .transact_items(put(item)?)
            .transact_items(put(index)?)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn list_responses(
        &self,
        key_id: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<ResponseSummary>, StoreError> {
        let (ipk, _) = index_pk_sk(key_id, 0, "");
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&ipk))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items.unwrap_or_default() {
                let r: ResponseSummary = from_item(item)?;
                if r.expires_at > now_ms {
                    out.push(r);
                }
                if out.len() >= limit as usize {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn get_response(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let Some(item) = self.get(&pk(id), SK).await? else {
            return Ok(None);
        };
        let r: StoredResponse = from_item(item)?;
        Ok((r.expires_at > now_ms).then_some(r))
    }

    async fn delete_response(&self, id: &str) -> Result<bool, StoreError> {
        let Some(item) = self.get(&pk(id), SK).await? else {
            return Ok(false);
        };
        let r: StoredResponse = from_item(item)?;
        let (ipk, isk) = index_pk_sk(&r.key_id, r.created_at, &r.id);
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.delete(&pk(id), SK)?)
            .transact_items(self.delete(&ipk, &isk)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Deleted meanwhile by another request.
            Err(e) if crate::cancelled_conditions(&e).is_some_and(|c| !c.is_empty()) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// DynamoDB's TTL deletes expired responses: nothing to do here.
    async fn purge_responses(&self, _now_ms: i64, _limit: u32) -> Result<u64, StoreError> {
        Ok(0)
    }
}
