//! ModelGate's store on Amazon DynamoDB, for Lambda deployments that have
//! outgrown one SQLite file on EFS.
//!
//! One table, keyed `pk` (string) + `sk` (string):
//!
//! | item | pk | sk | notes |
//! | --- | --- | --- | --- |
//! | key | `key` | key id | a key ([`items`]) + `quota_left`, `budget_left` |
//! | key hash | `key_hash` | SHA-256 hex | `key_id`; makes hashes unique |
//! | model | `model` | model id | a model ([`items`]) |
//! | model name | `model_name` | name | `model_id`; makes names unique |
//! | usage | `usage#YYYY-MM-DD` | `<created_at, 13 digits>#<request id>` | one per request |
//! | lease | `lease` | request id | a [`Lease`](modelgate_core::domain::Lease): written with its reservation, deleted with its settlement |
//! | settled | `settled` | request id | written by the first settlement of a request: the others find it and change nothing |
//!
//! Everything that must be atomic is a conditional write or a transaction:
//! uniqueness (`attribute_not_exists`), quota reservation (a condition on
//! `quota_left`, the quota minus used minus reserved, kept by every write
//! that moves those counters), settlement (the `settled` marker and the
//! usage record, written only if absent, the charge and the lease's end in
//! one transaction: any later settlement of the same request, a retry or
//! one made at another time, is a no-op). Every read is strongly
//! consistent.
//!
//! # Layout
//! `lib.rs` holds the client, the table and item helpers; `items` maps
//! keys and models to their items (this store's own mapping, not the SQL
//! rows); `counters` builds the condition and update expressions of quota
//! and budget; `keys`, `models`, `usage` and `responses` implement the
//! ports over them (a settlement in `keys` writes `usage`'s record).
//! Imports flow downward only: rs_shape finds no cycle.

mod counters;
mod items;
mod keys;
mod mcp;
mod models;
mod responses;
mod usage;

use std::collections::HashMap;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem,
};
use aws_smithy_http_client::tls;
use modelgate_core::error::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A DynamoDB item.
type Item = HashMap<String, AttributeValue>;

/// Keys, models and usage in one DynamoDB table.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// How long an operation may take, retries included, unless the
    /// operator says otherwise (`MG_DYNAMODB_TIMEOUT_MS`).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// `MG_DYNAMODB_TIMEOUT_MS` read: its default when unset, else whole
    /// milliseconds, 100 or more.
    pub fn timeout_setting(value: Option<&str>) -> Result<Duration, &'static str> {
        match value {
            None => Ok(Self::DEFAULT_TIMEOUT),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms >= 100)
                .map(Duration::from_millis)
                .ok_or("must be a whole number of ms, 100 or more"),
        }
    }

    /// The SDK configuration loader ModelGate uses: credentials and region
    /// from the environment (a Lambda's role), TLS by rustls on ring, each
    /// operation timed out after `timeout` and each attempt after two
    /// fifths of it (2 s and 5 s by default: DynamoDB answers in
    /// milliseconds; an emulator answering one request at a time may need
    /// more).
    pub fn config_loader(timeout: Duration) -> ConfigLoader {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(timeout * 2 / 5)
            .operation_timeout(timeout)
            .build();
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(timeouts)
    }

    /// A store on `table` with this SDK configuration.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            table: table.into(),
        }
    }

    /// A store on `table` configured from the environment, at `endpoint`
    /// (a local DynamoDB, moto) when given.
    pub async fn connect(table: impl Into<String>, endpoint: Option<&str>) -> Self {
        let mut loader = Self::config_loader(Self::DEFAULT_TIMEOUT);
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self::new(&loader.load().await, table)
    }

    /// Create the table (on-demand billing) if it does not exist: for tests
    /// and local runs; deployments create it with the SAM template.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(unavailable)
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(unavailable)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => self.enable_ttl().await,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// A transaction item: put `item` if `condition` holds.
    pub(crate) fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The item at `pk`/`sk`, read consistently.
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// Every item under `pk`, read consistently, page by page.
    async fn query_all(
        &self,
        pk: &str,
        sk_between: Option<(String, String)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            q = match &sk_between {
                Some((lo, hi)) => q
                    .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                    .expression_attribute_values(":lo", s(lo))
                    .expression_attribute_values(":hi", s(hi)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let out = q.send().await.map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

/// A string attribute.
fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `row` as an item at `pk`/`sk`.
fn to_item(pk: &str, sk: &str, row: &impl Serialize) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(row).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    item.insert("pk".into(), s(pk));
    item.insert("sk".into(), s(sk));
    Ok(item)
}

/// The row stored in `item`.
fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A string attribute of `item`.
fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!("attribute {name}"))),
    }
}

/// A number attribute of `item` (absent or NULL: 0).
fn get_n(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("attribute {name}"))),
        None | Some(AttributeValue::Null(_)) => Ok(None),
        _ => Err(StoreError::Corrupt(format!("attribute {name}"))),
    }
}

/// Whether a request failed on a condition, rather than on the service.
fn condition_failed<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// The positions of a cancelled transaction's items whose condition failed,
/// or `None` when the transaction failed for another reason.
fn cancelled_conditions<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Vec<usize>> {
    match e.as_service_error()? {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => Some(
            t.cancellation_reasons()
                .iter()
                .enumerate()
                .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                .map(|(i, _)| i)
                .collect(),
        ),
        _ => None,
    }
}

/// A DynamoDB failure: the store is unavailable (the gateway answers 503;
/// the text is for the log only). With its sources, the SDK's error names
/// the service's code and the cause, never our keys.
fn unavailable(e: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(format!(
        "dynamodb: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(e)
    ))
}
