//! Stored responses: the conversation a request continues (resolved into
//! its input before admission, so the reservation counts it), keeping what
//! was answered, and the routes that read it back.
//!
//! A key sees only the responses it made (another key gets the same 404
//! as for an unknown id); an admin key sees all. Expired responses are
//! unreadable at once and deleted in bounded batches by the expiry index,
//! on detached work after a response is kept.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::{Body, Gateway, Peer, Response, json_response};
use crate::backend::{BackendKind, ResponsesApi};
use crate::domain::{ApiKey, Model, StoredResponse};
use crate::error::{GatewayError, RequestError};
use crate::ports::{Ports, ResponseStore};
use crate::request::{ProxyRequest, responses_input_bound, responses_prompt_bound};
use crate::responses::state;

/// Longest chain of `previous_response_id` followed.
const MAX_CHAIN: usize = 1000;
/// The most stored bytes a chain may load, in request bodies' limits.
const MAX_CHAIN_BODIES: usize = 4;
/// How often an instance deletes expired responses, ms.
const PURGE_EVERY_MS: i64 = 60_000;
/// Expired responses deleted per batch.
const PURGE_BATCH: u32 = 500;

/// What to keep of a request once it is answered.
#[derive(Debug, Clone)]
pub(super) struct Keep {
    /// The id the gateway gives the Response (the stored row's).
    id: String,
    key_id: String,
    model: String,
    previous_response_id: Option<String>,
    /// The request's own input items (references resolved), with ids, JSON.
    input: String,
}

/// How a Responses request relates to stored state.
#[derive(Debug, Default)]
pub(super) struct Conversation {
    /// Keep the answer (`store` not false, storing on).
    pub(super) keep: Option<Keep>,
    /// The `previous_response_id` the answer names.
    pub(super) previous_response_id: Option<String>,
}

fn not_found(what: &str, id: &str, param: Option<&str>) -> GatewayError {
    RequestError::Missing {
        message: format!("{what} with id '{id}' not found."),
        param: param.map(str::to_owned),
    }
    .into()
}

impl<P: Ports> Gateway<P> {
    /// The stored response `id` if `key` may read it.
    async fn readable(
        &self,
        key: &ApiKey,
        id: &str,
    ) -> Result<Option<StoredResponse>, GatewayError> {
        let found = self.ports().store().get_response(id, self.now_ms()).await?;
        Ok(found.filter(|r| key.admin || r.key_id == key.id))
    }

    /// Whether `req` names stored state (`previous_response_id`, or an
    /// `item_reference` in its input): resolving it reads the store.
    pub(super) fn names_stored_state(req: &ProxyRequest) -> bool {
        req.body.get("previous_response_id").is_some()
            || req
                .body
                .get("input")
                .and_then(Value::as_array)
                .is_some_and(|items| items.iter().any(is_reference))
    }

    /// Resolve `req`'s stored state into its input: `item_reference`s
    /// become the items, and a `previous_response_id` the chain's items
    /// before the new input (unless the upstream keeps state itself and
    /// made that response). The prompt bound is counted again.
    pub(super) async fn continue_conversation(
        &self,
        key: &ApiKey,
        model: &Model,
        req: &mut ProxyRequest,
        request_id: &str,
    ) -> Result<Conversation, GatewayError> {
        let settings = self.config().responses;
        let body = &mut req.body;
        let previous = body
            .get("previous_response_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut items = state::input_items(body.get("input"));
        let has_refs = items.iter().any(is_reference);
        if !settings.store && (previous.is_some() || has_refs) {
            let param = if previous.is_some() {
                "previous_response_id"
            } else {
                "input"
            };
            return Err(RequestError::invalid(
                "This gateway keeps no responses (MG_RESPONSES_STORE is off): send the whole conversation in 'input'.",
                Some(param),
            )
            .into());
        }
        // Only a model served by one OpenAI deployment can leave the chain
        // to the upstream: another deployment would not know its ids.
        let stateful = matches!(&*model.deployments(), [d]
            if d.backend == BackendKind::Openai && model.responses_api_of(d) == ResponsesApi::Native);
        let chain = match &previous {
            Some(id) => self.chain(key, id).await?,
            None => Vec::new(),
        };
        // The upstream resolves its own ids only for the responses it made,
        // by the ids it gave them.
        let upstream_previous = chain
            .last()
            .filter(|r| r.model == model.name)
            .and_then(state::upstream_id);
        let forward = stateful && (chain.is_empty() || upstream_previous.is_some());
        if let Some(id) = upstream_previous.filter(|_| forward) {
            body.insert("previous_response_id".into(), Value::from(id));
        }
        if previous.is_some() || has_refs {
            self.expand(key, req, (&chain, &mut items), forward).await?;
        }
        let body = &req.body;
        let wants = body.get("store").and_then(Value::as_bool).unwrap_or(true);
        let keep = (settings.store && wants).then(|| {
            let response_id = crate::backend::response_id(request_id);
            Keep {
                input: Value::Array(state::with_ids(items, &response_id)).to_string(),
                id: response_id,
                key_id: key.id.clone(),
                model: model.name.clone(),
                previous_response_id: previous.clone(),
            }
        });
        Ok(Conversation {
            keep,
            previous_response_id: previous,
        })
    }

    /// Count (`forward`: the upstream resolves the ids itself and bills
    /// the earlier turns and referenced items again) or put in place the
    /// stored items `req` names: the `chain` before its input `items`,
    /// whose references become the items they name.
    async fn expand(
        &self,
        key: &ApiKey,
        req: &mut ProxyRequest,
        (chain, items): (&[StoredResponse], &mut [Value]),
        forward: bool,
    ) -> Result<(), GatewayError> {
        if forward {
            let mut billed = state::chain_items(chain);
            for (i, item) in items.iter().enumerate() {
                if is_reference(item) {
                    billed.push(self.referenced(key, item, i).await?);
                }
            }
            let earlier = responses_input_bound(Some(&Value::Array(billed)))?;
            req.prompt_bound = req.prompt_bound.saturating_add(earlier);
            return Ok(());
        }
        for (i, item) in items.iter_mut().enumerate() {
            if is_reference(item) {
                *item = self.referenced(key, item, i).await?;
            }
        }
        let mut all = state::chain_items(chain);
        all.extend(items.iter().cloned());
        let body = &mut req.body;
        body.insert("input".into(), Value::Array(all));
        body.remove("previous_response_id");
        req.prompt_bound = responses_prompt_bound(body)?;
        Ok(())
    }

    /// The chain ending at `id`, oldest first: at most [`MAX_CHAIN`]
    /// responses of at most [`MAX_CHAIN_BODIES`] request bodies' worth of
    /// stored bytes (it stands for the conversation a client would
    /// otherwise send whole, within the body limit).
    async fn chain(&self, key: &ApiKey, id: &str) -> Result<Vec<StoredResponse>, GatewayError> {
        let max_bytes = self
            .config()
            .max_body_bytes
            .saturating_mul(MAX_CHAIN_BODIES);
        let mut chain = Vec::new();
        let mut bytes = 0usize;
        let mut next = Some(id.to_owned());
        while let Some(id) = next.take() {
            let r = self
                .readable(key, &id)
                .await?
                .ok_or_else(|| not_found("Previous response", &id, Some("previous_response_id")))?;
            bytes = bytes.saturating_add(r.input.len() + r.response.len());
            if chain.len() >= MAX_CHAIN || bytes > max_bytes {
                return Err(RequestError::invalid(
                    format!(
                        "The conversation is longer than {MAX_CHAIN} responses or {max_bytes} bytes: \
                         send it whole in 'input', or start a new one."
                    ),
                    Some("previous_response_id"),
                )
                .into());
            }
            next.clone_from(&r.previous_response_id);
            chain.push(r);
        }
        chain.reverse();
        Ok(chain)
    }

    /// The stored item an `item_reference` at `input[i]` names.
    async fn referenced(
        &self,
        key: &ApiKey,
        item: &Value,
        i: usize,
    ) -> Result<Value, GatewayError> {
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
        let param = format!("input[{i}].id");
        let missing = || not_found("Item", id, Some(&param));
        let response = state::response_of_item(id).ok_or_else(missing)?;
        let r = self.readable(key, &response).await?.ok_or_else(missing)?;
        state::find_item(&r, id).ok_or_else(missing)
    }

    /// Keep `answer` (a Response, JSON, as the upstream named it) under the
    /// gateway's id, as `keep` says; whether it was kept. Ids are the
    /// gateway's own, so one key's Response never replaces another's.
    pub(super) async fn keep_response(&self, keep: Keep, answer: &[u8]) -> bool {
        let id = keep.id.as_str();
        let size = keep.input.len() + answer.len();
        if size > self.config().responses.max_bytes {
            tracing::warn!(
                response_id = id,
                size,
                "response not kept: over MG_RESPONSES_MAX_BYTES"
            );
            return false;
        }
        let now = self.now_ms();
        let retention = self.config().responses.retention_ms;
        let stored = StoredResponse {
            id: id.to_owned(),
            key_id: keep.key_id,
            model: keep.model,
            previous_response_id: keep.previous_response_id,
            input: keep.input,
            response: String::from_utf8_lossy(answer).into_owned(),
            created_at: now,
            expires_at: now.saturating_add_unsigned(retention),
        };
        let kept = match self.ports().store().put_response(&stored).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(response_id = id, error = %e, "response not kept");
                false
            }
        };
        self.purge_responses_if_due();
        kept
    }

    fn purge_responses_if_due(&self) {
        let now = self.now_ms();
        if !super::claim_due(&self.inner.last_purge_ms, now, PURGE_EVERY_MS) {
            return;
        }
        let gateway = self.clone();
        self.ports().spawn(async move {
            match gateway
                .ports()
                .store()
                .purge_responses(now, PURGE_BATCH)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired responses deleted"),
                Err(e) => tracing::warn!(error = %e, "deleting expired responses failed"),
            }
        });
    }

    /// `GET`/`DELETE /v1/responses/{id}`, `GET .../input_items`.
    pub(super) async fn stored_route(
        &self,
        req: &http::Request<Bytes>,
        peer: Peer,
        id: &str,
        input_items: bool,
    ) -> Result<Response<P>, GatewayError> {
        let key = self.key_of(req, peer).await?;
        if !crate::request::valid_id(id) {
            return Err(not_found("Response", "?", None));
        }
        let r = self
            .readable(&key, id)
            .await?
            .ok_or_else(|| not_found("Response", id, None))?;
        if req.method() == http::Method::DELETE {
            self.ports().store().delete_response(id).await?;
            let body = json!({"id": id, "object": "response", "deleted": true});
            return Ok(json_response(StatusCode::OK, &body));
        }
        if input_items {
            let page =
                state::input_page(&state::stored_input(&r), req.uri().query().unwrap_or(""))?;
            return Ok(json_response(StatusCode::OK, &page));
        }
        let body = state::as_client_sees(&r).map_or(r.response, |v| v.to_string());
        let mut resp = http::Response::new(Body::Full(Bytes::from(body)));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }
}

impl<P: Ports> Gateway<P> {
    /// `GET /admin/api/responses?key_id=&limit=`: a key's stored
    /// responses, newest first (summaries; the content is read by id).
    pub(super) async fn admin_list_responses(
        &self,
        query: &str,
    ) -> Result<Response<P>, GatewayError> {
        let mut key_id = None;
        let mut limit = 100u32;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "key_id" => {
                    key_id = Some(super::admin::check_id(&v, "key_", "API key")?.to_owned())
                }
                "limit" => {
                    limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| {
                            RequestError::invalid(
                                "'limit' must be an integer from 1 to 1000.",
                                Some("limit"),
                            )
                        })?;
                }
                _ => {}
            }
        }
        let key_id = key_id.ok_or_else(|| {
            RequestError::invalid("Missing required parameter: 'key_id'.", Some("key_id"))
        })?;
        let data = self
            .ports()
            .store()
            .list_responses(&key_id, self.now_ms(), limit)
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": data}),
        ))
    }

    /// `POST /admin/api/responses/purge`: delete expired responses now.
    pub(super) async fn admin_purge_responses(&self) -> Result<Response<P>, GatewayError> {
        let now = self.now_ms();
        let mut deleted = 0;
        // Bounded: a backlog past this is left to the next purge.
        for _ in 0..100 {
            let n = self
                .ports()
                .store()
                .purge_responses(now, PURGE_BATCH)
                .await?;
            deleted += n;
            if n < u64::from(PURGE_BATCH) {
                break;
            }
        }
        Ok(json_response(StatusCode::OK, &json!({"deleted": deleted})))
    }

    /// `GET`/`DELETE /admin/api/responses/{id}`: any key's response.
    pub(super) async fn admin_response(
        &self,
        method: &http::Method,
        id: &str,
    ) -> Result<Response<P>, GatewayError> {
        let store = self.ports().store();
        let found = match crate::request::valid_id(id) {
            true => store.get_response(id, self.now_ms()).await?,
            false => None,
        };
        let r = found.ok_or_else(|| RequestError::NotFound("Response".to_owned()))?;
        if method == http::Method::DELETE {
            store.delete_response(id).await?;
            let body = json!({"id": id, "object": "response", "deleted": true});
            return Ok(json_response(StatusCode::OK, &body));
        }
        let body = state::as_client_sees(&r).unwrap_or(Value::Null);
        let view = json!({"summary": r.summary(), "response": body});
        Ok(json_response(StatusCode::OK, &view))
    }
}

fn is_reference(item: &Value) -> bool {
    item.get("type").and_then(Value::as_str) == Some("item_reference")
}
