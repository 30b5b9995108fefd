//! Stored Responses: one item per response under its own partition (no
//! hot key), expired by DynamoDB's TTL on `ttl` (epoch seconds; the SAM
//! template enables it) and filtered out of every read from `expires_at`.

use aws_sdk_dynamodb::types::TimeToLiveSpecification;
use modelgate_core::domain::StoredResponse;
use modelgate_core::error::StoreError;
use modelgate_core::ports::ResponseStore;

use crate::{DynamoStore, from_item, n, s, to_item, unavailable};

const SK: &str = "response";

fn pk(id: &str) -> String {
    format!("response#{id}")
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
        let mut item = to_item(&pk(&response.id), SK, response)?;
        item.insert("ttl".into(), n(response.expires_at.div_euclid(1000) + 1));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
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
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk(id)))
            .key("sk", s(SK))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// DynamoDB's TTL deletes expired responses: nothing to do here.
    async fn purge_responses(&self, _now_ms: i64, _limit: u32) -> Result<u64, StoreError> {
        Ok(0)
    }
}
