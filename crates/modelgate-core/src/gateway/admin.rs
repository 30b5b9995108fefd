//! The admin API under `/admin/api/`: keys, and routing to the model,
//! usage and MCP handlers. Every route needs an admin key: the bootstrap key
//! (`MG_ADMIN_API_KEY`, compared in constant time) or a stored active key
//! with `admin: true`.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{Gateway, Peer, Response, json_response};
use crate::domain::{KeyPatch, KeyStatus};
use crate::error::{GatewayError, RequestError};
use crate::ports::Ports;

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
            (["usage", "records"], &Method::GET) => {
                self.usage_records(req.uri().query().unwrap_or("")).await
            }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
