//! Usage in the admin API: `GET /admin/api/usage` sums the records per
//! UTC day, key, model, API and deployment; `GET /admin/api/usage/records`
//! lists the records themselves, newest first (a tool call's with the
//! shape of its arguments).

use http::StatusCode;
use serde_json::{Value, json};

use super::admin::check_id;
use super::{Gateway, Response, json_response};
use crate::calendar::{DAY_MS, day_name, days_from_civil};
use crate::cost::nanos_to_usd;
use crate::domain::{RecordQuery, UsageQuery, UsageRecord};
use crate::error::{GatewayError, RequestError};
use crate::ports::{Ports, UsageStore};

/// Records a listing shows unless asked for fewer or more.
const DEFAULT_RECORDS: u32 = 100;
/// Most records one listing shows.
const MAX_RECORDS: u32 = 1000;

impl<P: Ports> Gateway<P> {
    /// `GET /admin/api/usage`.
    pub(super) async fn usage(&self, query: &str) -> Result<Response<P>, GatewayError> {
        let (q, _) = self.usage_query(query)?;
        let rows = self.ports().store().usage_by_day(&q).await?;
        let sum = |f: fn(&crate::domain::UsageRow) -> i64| rows.iter().map(f).sum::<i64>();
        let (p, c) = (sum(|r| r.prompt_tokens), sum(|r| r.completion_tokens));
        let totals = json!({"requests": sum(|r| r.requests), "prompt_tokens": p, "completion_tokens": c,
            "total_tokens": p + c, "cached_tokens": sum(|r| r.cached_tokens), "errors": sum(|r| r.errors),
            "cost_nanos": sum(|r| r.cost_nanos), "cost_usd": nanos_to_usd(sum(|r| r.cost_nanos))});
        let data: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut v = json!(r);
                v["cost_usd"] = json!(nanos_to_usd(r.cost_nanos));
                v
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "from": q.from_ms, "to": q.to_ms, "data": data, "totals": totals}),
        ))
    }

    /// `GET /admin/api/usage/records`: the filters of the report, plus
    /// `endpoint` and `limit`.
    pub(super) async fn usage_records(&self, query: &str) -> Result<Response<P>, GatewayError> {
        let (usage, rest) = self.usage_query(query)?;
        let mut q = RecordQuery {
            usage,
            endpoint: None,
            limit: DEFAULT_RECORDS,
        };
        for (k, v) in rest {
            match k.as_str() {
                "endpoint" => q.endpoint = Some(check_endpoint(v)?),
                "limit" => q.limit = check_limit(&v)?,
                _ => {}
            }
        }
        let records = self.ports().store().usage_records(&q).await?;
        let data: Vec<Value> = records.iter().map(record_view).collect();
        let has_more = data.len() == q.limit as usize;
        Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "from": q.usage.from_ms, "to": q.usage.to_ms, "data": data,
                "has_more": has_more}),
        ))
    }

    /// The report's filters (the last 30 days by default), and the
    /// parameters it does not know.
    fn usage_query(
        &self,
        query: &str,
    ) -> Result<(UsageQuery, Vec<(String, String)>), GatewayError> {
        let now = self.now_ms();
        let mut q = UsageQuery {
            from_ms: now - 30 * DAY_MS,
            to_ms: now + 1,
            key_id: None,
            model: None,
        };
        let mut rest = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "from" => q.from_ms = parse_time(&v, "from")?,
                "to" => q.to_ms = parse_time(&v, "to")?,
                "key_id" => q.key_id = Some(check_id(&v, "key_", "API key")?.to_owned()),
                "model" => q.model = Some(crate::request::valid_model(&v)?.to_owned()),
                _ => rest.push((k.into_owned(), v.into_owned())),
            }
        }
        if q.to_ms <= q.from_ms {
            return Err(RequestError::invalid("'to' must be after 'from'.", Some("to")).into());
        }
        Ok((q, rest))
    }
}

/// An API's name as records keep it (`chat`, `mcp`, ...).
fn check_endpoint(v: String) -> Result<String, GatewayError> {
    let ok = (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok {
        Ok(v)
    } else {
        Err(RequestError::invalid(
            "'endpoint' must be an API's name, e.g. 'chat' or 'mcp'.",
            Some("endpoint"),
        )
        .into())
    }
}

fn check_limit(v: &str) -> Result<u32, GatewayError> {
    v.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_RECORDS).contains(n))
        .ok_or_else(|| {
            RequestError::invalid(
                format!("'limit' must be from 1 to {MAX_RECORDS}."),
                Some("limit"),
            )
            .into()
        })
}

/// A record as the admin API shows it: its cost in dollars, a tool call's
/// argument shape as JSON.
fn record_view(r: &UsageRecord) -> Value {
    let arguments = r
        .arguments
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok());
    json!({
        "request_id": r.request_id,
        "created_at": r.created_at,
        "key_id": r.key_id,
        "model": r.model,
        "endpoint": r.endpoint,
        "deployment": r.deployment,
        "backend": r.backend,
        "status": r.status,
        "error": r.error,
        "latency_ms": r.latency_ms,
        "stream": r.stream,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "cached_tokens": r.cached_tokens,
        "usage_reported": r.usage_reported,
        "cost_usd": r.cost_nanos.map(nanos_to_usd),
        "arguments": arguments,
    })
}

/// Milliseconds since the epoch, or a UTC date `YYYY-MM-DD` (its midnight).
fn parse_time(v: &str, param: &str) -> Result<i64, GatewayError> {
    let bad = || {
        RequestError::invalid(
            format!("'{param}' must be a date (YYYY-MM-DD) or epoch milliseconds."),
            Some(param),
        )
    };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    let mut parts = v.splitn(3, '-').map(str::parse::<i64>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(y)), Some(Ok(m)), Some(Ok(d)))
            if (1..=12).contains(&m) && (1..=31).contains(&d) && (1970..=9999).contains(&y) =>
        {
            // A day the month does not have (2026-02-31) would otherwise
            // count on into the next month.
            let ms = days_from_civil(y, m, d) * DAY_MS;
            if day_name(ms) == format!("{y:04}-{m:02}-{d:02}") {
                Ok(ms)
            } else {
                Err(bad().into())
            }
        }
        _ => Err(bad().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_time("1970-01-02", "from").unwrap(), DAY_MS);
        assert_eq!(parse_time("2026-11-23", "from").unwrap(), 1_795_392_000_000);
        assert_eq!(parse_time("1234", "from").unwrap(), 1234);
        assert!(parse_time("2026-13-01", "from").is_err());
        for impossible in ["2026-02-31", "2026-02-29", "2026-04-31", "2100-02-29"] {
            assert!(parse_time(impossible, "from").is_err(), "{impossible}");
        }
        assert_eq!(
            parse_time("2028-02-29", "from").unwrap(),
            days_from_civil(2028, 2, 29) * DAY_MS
        );
        assert!(parse_time("yesterday", "from").is_err());
    }

    #[test]
    fn listing_parameters() {
        assert_eq!(check_limit("1").unwrap(), 1);
        assert_eq!(check_limit("1000").unwrap(), 1000);
        for bad in ["0", "1001", "-1", "ten"] {
            assert!(check_limit(bad).is_err(), "{bad}");
        }
        assert_eq!(check_endpoint("mcp".into()).unwrap(), "mcp");
        for bad in ["", "MCP", "chat;drop", &"x".repeat(33)] {
            assert!(check_endpoint(bad.into()).is_err(), "{bad}");
        }
    }
}
