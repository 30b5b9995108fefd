//! The proxy path, in named phases: authenticate -> parse -> resolve ->
//! admit (rate limit, quota reservation) -> forward -> relay -> settle.

use bytes::Bytes;
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use tracing::Instrument;

use super::admission::Admission;
use super::conversation::Conversation;
use super::forward::{Calls, Forwarded};
use super::settle::Ctx;
use super::stream::ClientRelay;
use super::{Body, Gateway, LimitKind, Peer, Response, limit_headers};
use crate::auth;
use crate::backend::{ResponsesApi, UpstreamCall};
use crate::domain::{ApiKey, Lease, Model};
use crate::error::{AuthError, GatewayError, RequestError};
use crate::observe;
use crate::ports::{KeyStore, ModelStore, Ports};
use crate::request::{self, Endpoint};
use crate::responses::{self, BridgeRelay, Echo};

impl<P: Ports> Gateway<P> {
    /// The stored key with this hash, checked (status, expiry, IP).
    pub(super) async fn checked_key(&self, hash: &str, peer: Peer) -> Result<ApiKey, GatewayError> {
        let now = self.now_ms();
        let records = &self.inner.records;
        let key = match records.key(hash, now) {
            Ok(k) => k,
            Err(read) => {
                let store = self.ports().store();
                let k = store
                    .find_key_by_hash(hash)
                    .await?
                    .ok_or(AuthError::Invalid)?;
                records.keep_key(hash, &k, read, now);
                k
            }
        };
        auth::check_key(&key, hash, now, peer.ip)?;
        Ok(key)
    }

    /// The enabled model `name`, if this key may use it.
    pub(super) async fn resolve_model(
        &self,
        key: &ApiKey,
        name: &str,
    ) -> Result<Model, GatewayError> {
        let not_found = || RequestError::ModelNotFound(name.to_owned());
        if !key.allowed_models.is_empty() && !key.allowed_models.iter().any(|m| m == name) {
            return Err(not_found().into());
        }
        let now = self.now_ms();
        let records = &self.inner.records;
        let model = match records.model(name, now) {
            Ok(m) => Some(m),
            Err(read) => {
                let found = self.ports().store().find_model(name).await?;
                if let Some(m) = &found {
                    records.keep_model(name, m, read, now);
                }
                found
            }
        };
        match model {
            Some(m) if m.enabled => Ok(m),
            _ => Err(not_found().into()),
        }
    }

    pub(super) async fn proxy(
        &self,
        req: http::Request<Bytes>,
        peer: Peer,
        request_id: &str,
        endpoint: Endpoint,
    ) -> Result<Response<P>, GatewayError> {
        let span = observe::request_span(endpoint, request_id);
        self.ports().adopt_trace(&span, req.headers());
        let mut model = None;
        let result = self
            .serve(req, peer, request_id, endpoint, (&span, &mut model))
            .instrument(span.clone())
            .await;
        let status = match &result {
            Ok(r) => r.status().as_u16(),
            Err(e) => {
                span.record("error.type", e.code().as_str());
                e.status().as_u16()
            }
        };
        span.record("http.response.status_code", i64::from(status));
        let model = model.as_deref().unwrap_or("");
        observe::answered(endpoint.as_str(), model, status, result.as_ref().err());
        result
    }

    async fn serve(
        &self,
        req: http::Request<Bytes>,
        peer: Peer,
        request_id: &str,
        endpoint: Endpoint,
        (span, resolved): (&tracing::Span, &mut Option<String>),
    ) -> Result<Response<P>, GatewayError> {
        let started_ms = self.now_ms();
        let arrived_us = self.ports().monotonic_us();
        let key = self.key_of(&req, peer).await?;
        // Decoding a compressed body is costly work: a key at its RPM limit
        // is refused before it.
        let counted = if crate::encoding::is_encoded(req.headers()) {
            Some(self.admit_key_rate(&key).await?)
        } else {
            None
        };
        let raw = crate::encoding::decode(req.headers(), req.body(), self.config().max_body_bytes)?;
        let mut parsed = request::parse(endpoint, &raw)?;
        drop(raw);
        let model_name = parsed
            .model
            .clone()
            .or_else(|| key.default_model.clone())
            .ok_or_else(|| {
                RequestError::invalid("You must provide a model parameter.", Some("model"))
            })?;
        let name = observe::request_model(span, endpoint, &model_name);
        self.ports().name_span(span, name);
        let model = self.resolve_model(&key, &model_name).await?;
        // A configured model: a bounded label.
        *resolved = Some(model.name.clone());
        let deployments = model.deployments();
        // Deployments whose backend cannot serve this request are left out;
        // if none can, the first one's refusal is the answer.
        let unable: Vec<bool> = deployments
            .iter()
            .map(|d| d.backend.supports(&parsed).is_err())
            .collect();
        if unable.iter().all(|&u| u) {
            deployments[0].backend.supports(&parsed)?;
        }
        // Walking a stored conversation reads the store, up to a thousand
        // times: a key at its RPM limit is refused before it.
        let counted = match counted {
            None if endpoint == Endpoint::Responses && Self::names_stored_state(&parsed) => {
                Some(self.admit_key_rate(&key).await?)
            }
            counted => counted,
        };
        let conversation = if endpoint == Endpoint::Responses {
            self.continue_conversation(&key, &model, &mut parsed, request_id)
                .await?
        } else {
            Conversation::default()
        };
        let bridges = endpoint == Endpoint::Responses
            && deployments
                .iter()
                .any(|d| model.responses_api_of(d) == ResponsesApi::Bridge);
        let bridge = if bridges {
            let echo = Echo::new(&parsed.body, request_id, &model.name, started_ms / 1000)
                .with_state(
                    conversation.keep.is_some(),
                    conversation.previous_response_id.clone(),
                );
            Some((echo, responses::to_chat(&parsed.body)?))
        } else {
            None
        };
        let lease = Lease {
            request_id: request_id.to_owned(),
            key_id: key.id.clone(),
            model: model.name.clone(),
            backend: model.backend.as_str().to_owned(),
            amount: 0,
            money: 0,
            created_at: started_ms,
            expires_at: self.lease_expiry(started_ms),
        };
        let (rate, reserved) = self
            .reserve(&key, (&parsed, counted), &lease, &model, &deployments)
            .await?;
        let injected_max_tokens = reserved.cap;
        self.sweep_leases_if_due();
        // From here on the request must be settled, whatever happens.
        let mut admission = Admission::new(
            self.clone(),
            Ctx {
                request_id: request_id.to_owned(),
                key_id: key.id.clone(),
                model: model.name.clone(),
                backend: model.backend,
                deployment: None,
                prices: model.prices,
                endpoint,
                started_ms,
                reserved,
                prompt_bound: parsed.prompt_bound,
                stream: parsed.stream,
                span: span.clone(),
            },
        );
        let call = |endpoint, body, client_include_usage| UpstreamCall {
            endpoint,
            stream: parsed.stream,
            client_include_usage,
            upstream_include_usage: model.stream_usage,
            injected_max_tokens,
            public_model: model.name.clone(),
            request_id: request_id.to_owned(),
            body,
        };
        // Bridged, the upstream call is a chat completion whose usage chunk
        // the bridge reads.
        let (echo, bridged, ignored_tools) = match bridge {
            Some((echo, b)) => (
                Some(echo),
                Some(call(Endpoint::Chat, b.chat, true)),
                b.ignored_tools.join(", "),
            ),
            None => (None, None, String::new()),
        };
        let calls = Calls {
            direct: call(endpoint, parsed.body, parsed.include_usage),
            bridged,
        };
        let deadline_ms = started_ms.saturating_add_unsigned(self.config().timeout_ms);
        let mut served = None;
        observe::overhead(
            "admit",
            self.ports().monotonic_us().saturating_sub(arrived_us),
        );
        let forwarded = self
            .forward(
                &model,
                &deployments,
                &unable,
                &calls,
                deadline_ms,
                &mut served,
            )
            .await;
        admission.served_by(
            forwarded
                .as_ref()
                .ok()
                .map(|f| (f.deployment.backend, f.deployment.prices)),
            served,
        );
        let Forwarded {
            response: upstream,
            mut pick,
            deployment,
            bridged,
        } = match forwarded {
            Ok(f) => f,
            Err(e) => return Err(settle_failure(admission, e).await),
        };
        let call = match (&calls.bridged, bridged) {
            (Some(b), true) => b,
            _ => &calls.direct,
        };
        let echo = echo.filter(|_| bridged);
        let ignored_tools = if bridged {
            ignored_tools
        } else {
            String::new()
        };
        let created_s = self.now_ms() / 1000;
        let mut resp = if call.stream {
            let relay = deployment
                .backend
                .relay(call, created_s)
                .with_previous_response_id(conversation.previous_response_id.clone());
            let relay = match echo {
                Some(echo) => ClientRelay::Bridge(Box::new(BridgeRelay::new(relay, echo))),
                None => ClientRelay::Upstream(relay),
            };
            let stream = super::ResponseStream::new(
                self.clone(),
                upstream.into_body(),
                relay,
                admission,
                deadline_ms,
            )
            .keeping(conversation.keep)
            .timing(pick);
            let mut r = http::Response::new(Body::Stream(Box::new(stream)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        } else {
            let read = self.read_body(upstream.into_body(), deadline_ms).await;
            pick.observe_latency(self.now_ms(), &self.config().resilience);
            drop(pick);
            let result = match read {
                Ok(bytes) => deployment
                    .backend
                    .parse_response(call, 200, &bytes, created_s)
                    .and_then(|(body, usage)| match &echo {
                        Some(echo) => Ok((responses::from_chat(echo, &body)?, usage)),
                        None => Ok((body, usage)),
                    })
                    .map_err(GatewayError::from),
                Err(e) => Err(e),
            };
            let (mut body, usage) = match result {
                Ok(ok) => ok,
                Err(e) => return Err(settle_failure(admission, e).await),
            };
            if let Some(keep) = conversation.keep
                && !self.keep_response(keep, &body).await
            {
                body = not_stored(body);
            }
            if call.endpoint == Endpoint::Responses && echo.is_none() {
                let previous = conversation.previous_response_id.as_deref();
                body = named(body, request_id, previous);
            }
            admission.settle(usage, 0, 200, None).await;
            let mut r = http::Response::new(Body::Full(body));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        };
        *resp.status_mut() = StatusCode::OK;
        let rpm = key.rpm.unwrap_or(self.config().default_rpm);
        limit_headers(
            resp.headers_mut(),
            LimitKind::Requests,
            rpm,
            rate.remaining,
            rate.reset_ms,
        );
        if let Some(t) = reserved.tpm.iter().flatten().next() {
            let d = t.decision;
            limit_headers(
                resp.headers_mut(),
                LimitKind::Tokens,
                t.limit,
                d.remaining,
                d.reset_ms,
            );
        }
        if let Ok(v) = HeaderValue::from_str(&ignored_tools)
            && !ignored_tools.is_empty()
        {
            resp.headers_mut().insert("x-modelgate-ignored-tools", v);
        }
        Ok(resp)
    }
}

/// Settle a request that failed before anything reached the client
/// (nothing generated: nothing charged), and hand the error back.
async fn settle_failure<P: Ports>(admission: Admission<P>, e: GatewayError) -> GatewayError {
    let status = e.status().as_u16();
    admission.settle(None, 0, status, Some(e.code())).await;
    e
}

/// An upstream's Response named as the gateway names it (see
/// [`crate::backend::response_id`]).
fn named(body: Bytes, request_id: &str, previous: Option<&str>) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut v) => {
            let id = crate::backend::response_id(request_id);
            crate::backend::name_response(&mut v, &id, previous);
            Bytes::from(v.to_string())
        }
        Err(_) => body,
    }
}

/// A Response that could not be kept says so (`store: false`).
fn not_stored(body: Bytes) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut v) if v.get("store").is_some() => {
            v["store"] = serde_json::Value::Bool(false);
            Bytes::from(v.to_string())
        }
        _ => body,
    }
}
