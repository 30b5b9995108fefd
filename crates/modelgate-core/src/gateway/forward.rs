//! Forwarding: endpoints (primary, then fallbacks) in rounds with backoff,
//! each endpoint behind its circuit breaker, all under one deadline. Only
//! the response head is awaited here, so every retry happens before a byte
//! reaches the client.

use std::future::Future;
use std::pin::pin;

use bytes::{Bytes, BytesMut};
use futures_util::future::{Either, select};

use super::Gateway;
use crate::backend::{Target, UpstreamCall, upstream_error};
use crate::domain::Model;
use crate::error::{GatewayError, UpstreamError};
use crate::ports::{ByteStream, HttpClient, Ports, TransportError, TransportErrorKind};
use crate::resilience::retryable_status;
use crate::secret::Secret;

/// A model `api_key` of `env:NAME` names a deployment secret.
pub(super) const SECRET_REF: &str = "env:";

/// Largest buffered upstream answer (or error body) read.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;
/// Error bodies are read only this far: enough for a message.
const MAX_ERROR_BODY: usize = 64 * 1024;

type UpstreamBody<P> = <<P as Ports>::Http as HttpClient>::Body;

/// Lets a half-open trial go if the request is dropped before its outcome.
struct Trial<'a, P: Ports> {
    gateway: &'a Gateway<P>,
    endpoint: &'a str,
    recorded: bool,
}

impl<P: Ports> Trial<'_, P> {
    fn record(mut self, ok: bool) {
        let g = self.gateway;
        g.inner
            .breakers
            .record(self.endpoint, ok, g.now_ms(), &g.config().resilience);
        self.recorded = true;
    }
}

impl<P: Ports> Drop for Trial<'_, P> {
    fn drop(&mut self) {
        if !self.recorded {
            self.gateway.inner.breakers.release(self.endpoint);
        }
    }
}

impl<P: Ports> Gateway<P> {
    /// Race `fut` against the deadline.
    pub(super) async fn until<T>(
        &self,
        deadline_ms: i64,
        fut: impl Future<Output = T>,
    ) -> Option<T> {
        let left = deadline_ms - self.now_ms();
        if left <= 0 {
            return None;
        }
        let sleep = self.ports().sleep(u64::try_from(left).unwrap_or(0));
        match select(pin!(fut), pin!(sleep)).await {
            Either::Left((v, _)) => Some(v),
            Either::Right(_) => None,
        }
    }

    /// Send `call` to the model's endpoints until one answers 2xx, a
    /// non-retryable error comes back, or rounds and time run out.
    pub(super) async fn forward(
        &self,
        model: &Model,
        call: &UpstreamCall,
        deadline_ms: i64,
    ) -> Result<http::Response<UpstreamBody<P>>, GatewayError> {
        let cfg = self.config().resilience;
        let endpoints: Vec<&str> = std::iter::once(model.base_url.as_str())
            .chain(model.fallback_urls.iter().map(String::as_str))
            .collect();
        let api_key = self.resolve_key(model.api_key.as_ref())?;
        let mut last: Option<UpstreamError> = None;
        for round in 0..=cfg.retries {
            if round > 0
                && self
                    .until(deadline_ms, self.ports().sleep(cfg.backoff(round)))
                    .await
                    .is_none()
            {
                return Err(UpstreamError::Timeout.into());
            }
            for (index, &base) in endpoints.iter().enumerate() {
                if !self.inner.breakers.allow(base, self.now_ms()) {
                    last.get_or_insert(UpstreamError::CircuitOpen);
                    continue;
                }
                let trial = Trial {
                    gateway: self,
                    endpoint: base,
                    recorded: false,
                };
                let target = Target {
                    base_url: base,
                    api_key: api_key.as_deref(),
                };
                let req = model.backend.build(&target, call)?;
                let sent = self.until(deadline_ms, self.send_upstream(req)).await;
                let resp = match sent {
                    None => {
                        trial.record(false);
                        return Err(UpstreamError::Timeout.into());
                    }
                    Some(Err(e)) => {
                        trial.record(false);
                        // Logs name the endpoint by model and position, never by URL.
                        tracing::warn!(request_id = %call.request_id, model = %model.name, endpoint = index,
                            kind = ?e.kind, error = %e.detail, "upstream transport error");
                        last = Some(match e.kind {
                            TransportErrorKind::Timeout => UpstreamError::Timeout,
                            _ => UpstreamError::Connect { detail: e.detail },
                        });
                        continue;
                    }
                    Some(Ok(resp)) => resp,
                };
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    trial.record(true);
                    return Ok(resp);
                }
                // A 429 says "slow down", not "broken": it does not trip the breaker.
                trial.record(status < 500);
                let body = self
                    .read_limited(resp.into_body(), deadline_ms, MAX_ERROR_BODY)
                    .await
                    .unwrap_or_default();
                let err = upstream_error(status, &body);
                tracing::warn!(request_id = %call.request_id, model = %model.name, endpoint = index, status,
                    "upstream error status");
                if !retryable_status(status) {
                    return Err(err.into());
                }
                last = Some(err);
            }
        }
        Err(last.unwrap_or(UpstreamError::CircuitOpen).into())
    }

    /// Send `req` if the edge policy allows its address (checked when a
    /// model is written too; this covers models stored before the policy).
    pub(super) async fn send_upstream(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<UpstreamBody<P>>, TransportError> {
        let allow = self.config().allow_link_local_upstreams;
        if !crate::edge::upstream_uri_allowed(req.uri(), allow) {
            return Err(TransportError {
                kind: TransportErrorKind::Connect,
                detail: "upstream address not allowed (link-local or cloud metadata)".into(),
            });
        }
        self.ports().http().send(req).await
    }

    /// An upstream key as configured, resolving an `env:NAME` reference to
    /// the deployment secret it names.
    pub(super) fn resolve_key(&self, key: Option<&Secret>) -> Result<Option<String>, GatewayError> {
        let key = key.map(Secret::expose);
        let Some(name) = key.and_then(|k| k.strip_prefix(SECRET_REF)) else {
            return Ok(key.map(str::to_owned));
        };
        // A model stored before its secret was undeclared resolves nothing.
        let declared = self.config().secret_declared(name);
        match declared.then(|| self.ports().secret(name)).flatten() {
            Some(secret) => Ok(Some(secret)),
            None => {
                tracing::error!(
                    secret = name,
                    declared,
                    "an upstream key refers to a secret that is not set"
                );
                Err(UpstreamError::BadResponse {
                    status: 0,
                    detail: format!("secret {name} not set"),
                }
                .into())
            }
        }
    }

    /// Read a whole upstream body under the deadline.
    pub(super) async fn read_body(
        &self,
        body: UpstreamBody<P>,
        deadline_ms: i64,
    ) -> Result<Bytes, GatewayError> {
        self.read_limited(body, deadline_ms, MAX_UPSTREAM_BODY)
            .await
    }

    pub(super) async fn read_limited(
        &self,
        mut body: UpstreamBody<P>,
        deadline_ms: i64,
        limit: usize,
    ) -> Result<Bytes, GatewayError> {
        let mut buf = BytesMut::new();
        loop {
            match self.until(deadline_ms, body.next_chunk()).await {
                None => return Err(UpstreamError::Timeout.into()),
                Some(None) => return Ok(buf.freeze()),
                Some(Some(Ok(chunk))) => {
                    let room = limit.saturating_sub(buf.len());
                    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if buf.len() >= limit {
                        return Ok(buf.freeze());
                    }
                }
                Some(Some(Err(e))) => {
                    return Err(UpstreamError::BadResponse {
                        status: 0,
                        detail: format!("body: {e}"),
                    }
                    .into());
                }
            }
        }
    }
}
