//! The proxy path, in named phases: authenticate -> parse -> resolve ->
//! plan (the client's dialect, [`super::dialect`]) -> admit (rate limit,
//! reservation) -> forward -> respond (relay or read) -> settle.

use bytes::Bytes;
use tracing::Instrument;

use super::admission::Admission;
use super::settle::Ctx;
use super::{Gateway, Peer, Response};
use crate::auth;
use crate::backend::UpstreamCall;
use crate::deployment::Deployment;
use crate::domain::{ApiKey, Lease, Model};
use crate::error::{AuthError, GatewayError, RequestError};
use crate::observe;
use crate::ports::{KeyStore, ModelStore, Ports, RateDecision};
use crate::request::{self, Endpoint, ProxyRequest};

/// What the proxy path knows of a request from its start.
#[derive(Clone, Copy)]
pub(super) struct Incoming<'a> {
    pub(super) request_id: &'a str,
    pub(super) endpoint: Endpoint,
    /// The request's span (see [`observe::request_span`]).
    pub(super) span: &'a tracing::Span,
    pub(super) started_ms: i64,
    arrived_us: u64,
}

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
        let inc = Incoming {
            request_id,
            endpoint,
            span: &span,
            started_ms: self.now_ms(),
            arrived_us: self.ports().monotonic_us(),
        };
        let mut model = None;
        let result = self
            .serve(req, peer, inc, &mut model)
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

    /// The phases in order; `resolved` names the model once it is known
    /// (a configured model: a bounded metrics label).
    async fn serve(
        &self,
        req: http::Request<Bytes>,
        peer: Peer,
        inc: Incoming<'_>,
        resolved: &mut Option<String>,
    ) -> Result<Response<P>, GatewayError> {
        let key = self.key_of(&req, peer).await?;
        let (request, counted) = self.parse(&key, &req, inc).await?;
        let anthropic_headers = match inc.endpoint {
            Endpoint::Messages => super::route::anthropic_headers(req.headers()),
            _ => Vec::new(),
        };
        drop(req);
        let model = self.model_for(&key, &request, inc).await?;
        *resolved = Some(model.name.clone());
        let deployments = model.deployments();
        let unable = unable(&deployments, &request)?;
        let (plan, counted) = self
            .plan(&key, (&model, &deployments), request, counted, inc)
            .await?;
        let (rate, admission) = self
            .admit(&key, (&model, &deployments), &plan.request, counted, inc)
            .await?;
        let reserved = admission.ctx().reserved;
        let (calls, answer) =
            plan.into_calls(inc.endpoint, |endpoint, body, include_usage| UpstreamCall {
                endpoint,
                stream: admission.ctx().stream,
                client_include_usage: include_usage,
                upstream_include_usage: model.stream_usage,
                injected_max_tokens: reserved.cap,
                public_model: model.name.clone(),
                request_id: inc.request_id.to_owned(),
                body,
                anthropic_headers: anthropic_headers.clone(),
            });
        let deadline_ms = inc
            .started_ms
            .saturating_add_unsigned(self.config().timeout_ms);
        let waited = self.ports().monotonic_us().saturating_sub(inc.arrived_us);
        observe::overhead("admit", waited);
        let mut admission = admission;
        let mut served = None;
        let forwarded = self
            .forward(
                (&model, &deployments),
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
        let forwarded = match forwarded {
            Ok(f) => f,
            Err(e) => return Err(admission.fail(e).await),
        };
        let mut resp = self
            .respond(forwarded, &calls, answer, admission, deadline_ms)
            .await?;
        self.limit_headers(resp.headers_mut(), &key, rate, &reserved);
        Ok(resp)
    }

    /// The request's body, decoded and parsed, and the key's RPM decision
    /// if decoding it needed one first.
    async fn parse(
        &self,
        key: &ApiKey,
        req: &http::Request<Bytes>,
        inc: Incoming<'_>,
    ) -> Result<(ProxyRequest, Option<RateDecision>), GatewayError> {
        // Decoding a compressed body is costly work: a key at its RPM limit
        // is refused before it.
        let counted = if crate::encoding::is_encoded(req.headers()) {
            Some(self.admit_key_rate(key).await?)
        } else {
            None
        };
        let limit = self.body_limit(&super::Route::Proxy(inc.endpoint));
        let raw = crate::encoding::decode(req.headers(), req.body(), limit)?;
        Ok((request::parse(inc.endpoint, &raw)?, counted))
    }

    /// The model the request names (or the key's default), if the key may
    /// use it.
    async fn model_for(
        &self,
        key: &ApiKey,
        request: &ProxyRequest,
        inc: Incoming<'_>,
    ) -> Result<Model, GatewayError> {
        let name = request
            .model
            .as_deref()
            .or(key.default_model.as_deref())
            .ok_or_else(|| {
                RequestError::invalid("You must provide a model parameter.", Some("model"))
            })?;
        let label = observe::request_model(inc.span, inc.endpoint, name);
        self.ports().name_span(inc.span, label);
        self.resolve_model(key, name).await
    }

    /// Count the request and reserve its worst case; from here on it must
    /// be settled, whatever happens (the [`Admission`] sees to it).
    async fn admit(
        &self,
        key: &ApiKey,
        (model, deployments): (&Model, &[Deployment]),
        request: &ProxyRequest,
        counted: Option<RateDecision>,
        inc: Incoming<'_>,
    ) -> Result<(RateDecision, Admission<P>), GatewayError> {
        let lease = Lease {
            request_id: inc.request_id.to_owned(),
            key_id: key.id.clone(),
            model: model.name.clone(),
            backend: model.backend.as_str().to_owned(),
            amount: 0,
            money: 0,
            created_at: inc.started_ms,
            expires_at: self.lease_expiry(inc.started_ms),
        };
        let (rate, reserved) = self
            .reserve(key, (request, counted), &lease, model, deployments)
            .await?;
        self.sweep_leases_if_due();
        let ctx = Ctx {
            request_id: inc.request_id.to_owned(),
            key_id: key.id.clone(),
            model: model.name.clone(),
            backend: model.backend,
            deployment: None,
            prices: model.prices,
            endpoint: inc.endpoint,
            started_ms: inc.started_ms,
            reserved,
            prompt_bound: request.prompt_bound,
            stream: request.stream,
            span: inc.span.clone(),
        };
        Ok((rate, Admission::new(self.clone(), ctx)))
    }
}

/// Which deployments cannot serve `request` (left out of routing); if none
/// can, the first one's refusal is the answer.
fn unable(deployments: &[Deployment], request: &ProxyRequest) -> Result<Vec<bool>, GatewayError> {
    let unable: Vec<bool> = deployments
        .iter()
        .map(|d| d.backend.supports(request).is_err())
        .collect();
    if unable.iter().all(|&u| u) {
        deployments[0].backend.supports(request)?;
    }
    Ok(unable)
}
