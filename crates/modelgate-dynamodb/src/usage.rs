//! Usage records: one item per request under its UTC day, summed per day,
//! key, model and endpoint when asked.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt, TryStreamExt, stream};
use modelgate_core::calendar::{DAY_MS, day_name};
use modelgate_core::domain::{RecordQuery, UsageQuery, UsageRecord, UsageRow};
use modelgate_core::error::StoreError;
use modelgate_core::ports::UsageStore;

use crate::{DynamoStore, Item, from_item, get_n, get_s, n, s};

/// Ranges wider than this many days are read with one filtered scan
/// instead of a query per day.
const MAX_QUERIED_DAYS: i64 = 366;

/// Days read at once.
const PARALLEL_DAYS: usize = 8;

const PREFIX: &str = "usage#";

fn day_pk(ms: i64) -> String {
    format!("{PREFIX}{}", day_name(ms))
}

fn sort_key(created_at: i64, request_id: &str) -> String {
    format!("{created_at:013}#{request_id}")
}

/// Where a usage record lives.
pub(crate) fn record_pk_sk(u: &UsageRecord) -> (String, String) {
    (day_pk(u.created_at), sort_key(u.created_at, &u.request_id))
}

/// The item of a usage record.
pub(crate) fn record_item(pk: &str, sk: &str, u: &UsageRecord) -> Result<Item, StoreError> {
    crate::to_item(pk, sk, u)
}

impl DynamoStore {
    async fn records(&self, q: &UsageQuery) -> Result<Vec<Item>, StoreError> {
        // The range is [from, to), like the SQL stores'.
        let (from, to) = (q.from_ms.max(0), q.to_ms.max(0));
        if to <= from {
            return Ok(Vec::new());
        }
        let (first, last) = (from / DAY_MS, (to - 1) / DAY_MS);
        if last - first >= MAX_QUERIED_DAYS {
            return self.scan_records(from, to - 1).await;
        }
        // `~` sorts after every character of a request id.
        let between = Some((sort_key(from, ""), sort_key(to - 1, "~")));
        let days: Vec<Vec<Item>> = stream::iter(first..=last)
            .map(|day| {
                let between = between.clone();
                async move { self.query_all(&day_pk(day * DAY_MS), between).await }
            })
            .buffered(PARALLEL_DAYS)
            .try_collect()
            .await?;
        Ok(days.into_iter().flatten().collect())
    }

    async fn scan_records(&self, from: i64, to: i64) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(pk, :usage) AND created_at BETWEEN :from AND :to")
                .expression_attribute_values(":usage", s(PREFIX))
                .expression_attribute_values(":from", n(from))
                .expression_attribute_values(":to", n(to))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(crate::unavailable)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

impl UsageStore for DynamoStore {
    async fn usage_by_day(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        type Group = (String, String, String, Option<String>, Option<String>);
        let mut sums: BTreeMap<Group, UsageRow> = BTreeMap::new();
        for item in self.records(q).await? {
            let key_id = get_s(&item, "key_id")?;
            let model = get_s(&item, "model")?;
            if q.key_id.as_deref().is_some_and(|k| k != key_id)
                || q.model.as_deref().is_some_and(|m| m != model)
            {
                continue;
            }
            let day = get_s(&item, "pk")?.trim_start_matches(PREFIX).to_owned();
            let text = |k: &str| match item.get(k) {
                Some(AttributeValue::S(e)) => Some(e.clone()),
                _ => None,
            };
            let group = (
                day.clone(),
                key_id.to_owned(),
                model.to_owned(),
                text("endpoint"),
                text("deployment"),
            );
            let row = sums.entry(group.clone()).or_insert_with(|| UsageRow {
                day,
                key_id: key_id.to_owned(),
                model: model.to_owned(),
                endpoint: group.3,
                deployment: group.4,
                requests: 0,
                prompt_tokens: 0,
                completion_tokens: 0,
                cached_tokens: 0,
                cost_nanos: 0,
                errors: 0,
            });
            row.requests += 1;
            let n = |k: &str| get_n(&item, k).map(Option::unwrap_or_default);
            row.prompt_tokens = row.prompt_tokens.saturating_add(n("prompt_tokens")?);
            row.completion_tokens = row
                .completion_tokens
                .saturating_add(n("completion_tokens")?);
            row.cached_tokens = row.cached_tokens.saturating_add(n("cached_tokens")?);
            row.cost_nanos = row.cost_nanos.saturating_add(n("cost_nanos")?);
            let failed = !matches!(item.get("error"), None | Some(AttributeValue::Null(_)));
            row.errors += i64::from(failed);
        }
        Ok(sums.into_values().collect())
    }

    async fn usage_records(&self, q: &RecordQuery) -> Result<Vec<UsageRecord>, StoreError> {
        let u = &q.usage;
        let (from, to) = (u.from_ms.max(0), u.to_ms.max(0));
        let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
        let wanted = |r: &UsageRecord| {
            u.key_id.as_deref().is_none_or(|k| k == r.key_id)
                && u.model.as_deref().is_none_or(|m| m == r.model)
                && (q.endpoint.is_none() || q.endpoint == r.endpoint)
        };
        let mut found = Vec::new();
        if to <= from || limit == 0 {
            return Ok(found);
        }
        let (first, last) = (from / DAY_MS, (to - 1) / DAY_MS);
        // The newest day first, until enough are found.
        let days: Vec<Option<i64>> = if last - first >= MAX_QUERIED_DAYS {
            vec![None]
        } else {
            (first..=last).rev().map(Some).collect()
        };
        let between = Some((sort_key(from, ""), sort_key(to - 1, "~")));
        for day in days {
            let items = match day {
                Some(day) => {
                    self.query_all(&day_pk(day * DAY_MS), between.clone())
                        .await?
                }
                None => self.scan_records(from, to - 1).await?,
            };
            for item in items {
                let record: UsageRecord = from_item(item)?;
                if wanted(&record) {
                    found.push(record);
                }
            }
            if found.len() >= limit {
                break;
            }
        }
        found.sort_by(|a, b| (b.created_at, &b.request_id).cmp(&(a.created_at, &a.request_id)));
        found.truncate(limit);
        Ok(found)
    }
}
