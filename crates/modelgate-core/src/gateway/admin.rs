//! The admin API under `/admin/api/`: keys, usage, and routing to the model
//! handlers. Every route needs an admin key: the bootstrap key
//! (`MG_ADMIN_API_KEY`, compared in constant time) or a stored active key
//! with `admin: true`.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Gateway, Peer, Response, json_response};
use crate::calendar::{DAY_MS, day_name, days_from_civil};
use crate::cost::nanos_to_usd;
use crate::domain::{KeyPatch, KeyStatus, UsageQuery};
use crate::error::{GatewayError, RequestError};
use crate::ports::{Ports, UsageStore};

/// Parse a JSON body into `T`, with an OpenAI-shaped 400 on failure.
pub(super) fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| RequestError::invalid(format!("Invalid request body: {e}"), None).into())
}

/// Ids the gateway generates: `prefix` + 24 lowercase hex digits. Anything
/// else (`..`, `%2e`, SQL) is simply not found.
pub(super) fn check_id<'a>(id: &'a str, prefix: &str, what: &str) -> Result<&'a str, GatewayError> {
    let ok = id
        .strip_prefix(prefix)
        .is_some_and(|h| h.len() == 24 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(id)
    } else {
        Err(RequestError::NotFound(what.to_owned()).into())
    }
}

impl<P: Ports> Gateway<P> {
    pub(super) async fn admin(
        &self,
        req: http::Request<Bytes>,
        peer: Peer,
        rest: &[&str],
    ) -> Result<Response<P>, GatewayError> {
        self.admin_of(&req, peer).await?;
        let method = req.method().clone();
        let body = req.body();
        match (rest, &method) {
            (["verify"], &Method::GET) => Ok(json_response(StatusCode::OK, &json!({"ok": true}))),
            (["keys"], &Method::POST) => self.create_key(body).await,
            (["keys"], &Method::GET) => self.list_keys().await,
            (["keys", id], m) => {
                let id = check_id(id, "key_", "API key")?;
                match *m {
                    Method::GET => self.key_answer(self.read_key(id).await?),
                    Method::PATCH => self.patch_key(id, parse_body(body)?).await,
                    Method::DELETE => {
                        let patch = KeyPatch {
                            status: Some(KeyStatus::Revoked),
                            ..KeyPatch::default()
                        };
                        self.key_answer(self.write_key(id, patch).await?)
                    }
                    _ => Err(RequestError::MethodNotAllowed.into()),
                }
            }
            (["models"], &Method::POST) => self.create_model(body).await,
            (["models"], &Method::GET) => self.admin_list_models().await,
            (["deployments"], &Method::GET) => self.admin_deployments().await,
            (["models", "sync"], &Method::POST) => self.sync_models(body).await,
            (["models", id], m) => {
                let id = check_id(id, "mdl_", "Model")?;
                match *m {
                    Method::GET => self.admin_get_model(id).await,
                    Method::PATCH => self.patch_model(id, body).await,
                    Method::DELETE => self.delete_model(id).await,
                    _ => Err(RequestError::MethodNotAllowed.into()),
                }
            }
            (["mcp", rest @ ..], m) => self.admin_mcp_servers(rest, m, body).await,
            (["usage"], &Method::GET) => self.usage(req.uri().query().unwrap_or("")).await,
            (["reservations"], &Method::GET) => {
                let leases = self.admin_leases().await?;
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"object": "list", "data": leases}),
                ))
            }
            (["reservations", id], &Method::DELETE) => self.release_reservation(id).await,
            (["responses"], &Method::GET) => {
                self.admin_list_responses(req.uri().query().unwrap_or(""))
                    .await
            }
            (["responses", "purge"], &Method::POST) => self.admin_purge_responses().await,
            (["responses", id], &Method::GET | &Method::DELETE) => {
                self.admin_response(req.method(), id).await
            }
            (
                [
                    "keys" | "models" | "usage" | "verify" | "reservations" | "responses",
                    ..,
                ],
                _,
            ) => Err(RequestError::MethodNotAllowed.into()),
            _ => Err(RequestError::NotFound("Admin route".to_owned()).into()),
        }
    }

    /// `DELETE /admin/api/reservations/{request_id}`.
    async fn release_reservation(&self, id: &str) -> Result<Response<P>, GatewayError> {
        let found = id
            .strip_prefix("req_")
            .is_some_and(|h| h.len() <= 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            && self.admin_release(id).await?;
        if !found {
            return Err(RequestError::NotFound("Reservation".to_owned()).into());
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"request_id": id, "released": true}),
        ))
    }

    async fn usage(&self, query: &str) -> Result<Response<P>, GatewayError> {
        let now = self.now_ms();
        let mut q = UsageQuery {
            from_ms: now - 30 * DAY_MS,
            to_ms: now + 1,
            key_id: None,
            model: None,
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "from" => q.from_ms = parse_time(&v, "from")?,
                "to" => q.to_ms = parse_time(&v, "to")?,
                "key_id" => q.key_id = Some(check_id(&v, "key_", "API key")?.to_owned()),
                "model" => q.model = Some(crate::request::valid_model(&v)?.to_owned()),
                _ => {}
            }
        }
        if q.to_ms <= q.from_ms {
            return Err(RequestError::invalid("'to' must be after 'from'.", Some("to")).into());
        }
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
    fn ids() {
        assert!(check_id("key_0123456789abcdef01234567", "key_", "k").is_ok());
        for bad in [
            "key_..",
            "../etc/passwd",
            "key_0123456789abcdef0123456'",
            "mdl_0123456789abcdef01234567",
        ] {
            assert!(check_id(bad, "key_", "k").is_err(), "{bad}");
        }
    }
}
