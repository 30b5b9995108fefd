//! Forwarding: deployments chosen by [`crate::routing`], failing over to
//! another on a failure (a 429 included) in rounds with backoff, all under
//! one deadline. Only the response head is awaited here, so every retry
//! happens before a byte reaches the client.

use std::future::Future;
use std::pin::pin;

use bytes::{Bytes, BytesMut};
use futures_util::future::{Either, select};
use tracing::Instrument;

use super::Gateway;
use crate::backend::{MessagesApi, ResponsesApi, Target, UpstreamCall, upstream_error};
use crate::deployment::Deployment;
use crate::domain::Model;
use crate::error::{GatewayError, UpstreamError};
use crate::observe;
use crate::ports::{ByteStream, HttpClient, Ports, TransportError, TransportErrorKind};
use crate::resilience::retryable_status;
use crate::routing::{Outcome, Pick};
use crate::secret::Secret;

/// Largest buffered upstream answer (or error body) read.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;
/// Error bodies are read only this far: enough for a message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest wait a 429's `Retry-After` may impose on a deployment.
const MAX_RETRY_AFTER_MS: u64 = 3_600_000;

type UpstreamBody<P> = <<P as Ports>::Http as HttpClient>::Body;

/// What a request sends: the call for the client's own endpoint and, for a
/// Responses request, its chat translation for deployments that bridge.
pub(super) struct Calls {
    pub(super) direct: UpstreamCall,
    pub(super) bridged: Option<UpstreamCall>,
    /// Every deployment that does not speak the client's API is sent the
    /// bridged call (Messages), not only those whose model bridges
    /// Responses.
    pub(super) always: bool,
}

impl Calls {
    /// The call sent: the bridged one if `bridged`.
    pub(super) fn sent(&self, bridged: bool) -> &UpstreamCall {
        match (&self.bridged, bridged) {
            (Some(b), true) => b,
            _ => &self.direct,
        }
    }
}

/// The upstream answer that will be relayed, and who gave it.
pub(super) struct Forwarded<P: Ports> {
    pub(super) response: http::Response<UpstreamBody<P>>,
    /// The request's share of the deployment's load, until it ends.
    pub(super) pick: Pick,
    pub(super) deployment: Deployment,
    /// Whether the call sent was the bridged one.
    pub(super) bridged: bool,
}

/// The request's deadline, as one attempt sees it.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// Other deployments remain: a silent one gives way at its first-byte
    /// deadline.
    Next(i64),
    /// The last deployment left may take until the request's deadline.
    Last(i64),
}

impl Deadline {
    fn whole(self) -> i64 {
        match self {
            Self::Next(ms) | Self::Last(ms) => ms,
        }
    }

    /// The attempt's deadline, given its first-byte deadline.
    fn of_attempt(self, first_byte_ms: i64) -> i64 {
        match self {
            Self::Next(ms) => ms.min(first_byte_ms),
            Self::Last(ms) => ms,
        }
    }
}

/// How one attempt ended.
enum Attempt<P: Ports> {
    Answered(Box<Forwarded<P>>),
    /// Another deployment may be tried.
    Failed(GatewayError),
    /// The request's answer.
    Final(GatewayError),
}

/// How long a 429 asked to wait: `retry-after-ms`, else `retry-after` in
/// seconds (an HTTP date is not read: the default applies).
fn retry_after_ms(h: &http::HeaderMap) -> Option<u64> {
    let num = |name: &str| h.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let ms = num("retry-after-ms").or_else(|| num("retry-after").map(|s| s * 1000.0))?;
    (ms.is_finite() && ms >= 0.0).then(|| (ms as u64).min(MAX_RETRY_AFTER_MS))
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

    /// Send the call to the model's deployments, as the router chooses,
    /// until one answers 2xx, a non-retryable error comes back, or rounds
    /// and time run out. `unable` marks deployments that cannot serve this
    /// request; `served` names the last deployment tried.
    pub(super) async fn forward(
        &self,
        (model, deployments): (&Model, &[Deployment]),
        unable: &[bool],
        calls: &Calls,
        deadline_ms: i64,
        served: &mut Option<String>,
    ) -> Result<Forwarded<P>, GatewayError> {
        let cfg = self.config().resilience;
        let mut last: Option<GatewayError> = None;
        for round in 0..=cfg.retries {
            if round > 0
                && self
                    .until(deadline_ms, self.ports().sleep(cfg.backoff(round)))
                    .await
                    .is_none()
            {
                return Err(UpstreamError::Timeout.into());
            }
            let mut skip = unable.to_vec();
            while let Some(pick) = self.inner.router.choose(
                &model.name,
                deployments,
                &skip,
                cfg.strategy,
                self.now_ms(),
            ) {
                let d = &deployments[pick.index];
                skip[pick.index] = true;
                *served = Some(d.name.clone());
                // The last deployment left may take until the deadline.
                let deadline = if skip.iter().all(|&s| s) {
                    Deadline::Last(deadline_ms)
                } else {
                    Deadline::Next(deadline_ms)
                };
                match self.attempt(model, (d, pick), calls, deadline).await {
                    Attempt::Answered(f) => return Ok(*f),
                    Attempt::Failed(e) => last = Some(e),
                    Attempt::Final(e) => return Err(e),
                }
            }
        }
        Err(last.unwrap_or_else(|| UpstreamError::CircuitOpen.into()))
    }

    /// Send the call to deployment `d` and await its response head.
    async fn attempt(
        &self,
        model: &Model,
        (d, mut pick): (&Deployment, Pick),
        calls: &Calls,
        deadline: Deadline,
    ) -> Attempt<P> {
        let cfg = self.config().resilience;
        let bridged = calls.bridged.is_some()
            && if calls.always {
                model.messages_api_of(d) == MessagesApi::Bridge
            } else {
                model.responses_api_of(d) == ResponsesApi::Bridge
            };
        let call = calls.sent(bridged);
        // A deployment this gateway cannot address (its secret unset, a key
        // that is no header) is skipped, not blamed.
        let api_key = match self.resolve_key(d.api_key.as_ref()) {
            Ok(k) => k,
            Err(e) => return Attempt::Failed(e),
        };
        let target = Target {
            base_url: &d.base_url,
            model: &d.upstream_model,
            api_key: api_key.as_deref(),
        };
        let req = match d.backend.build(&target, call) {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(e.into()),
        };
        let span = observe::attempt_span(
            call.endpoint,
            &d.upstream_model,
            &d.name,
            d.backend.as_str(),
        );
        let first_byte = self.first_byte_ms(d, call.stream);
        let until = deadline.of_attempt(self.now_ms().saturating_add_unsigned(first_byte));
        let sent = self
            .until(until, self.send_upstream(req).instrument(span.clone()))
            .await;
        match &sent {
            Some(Ok(r)) => span.record("http.response.status_code", i64::from(r.status().as_u16())),
            Some(Err(e)) => span.record("error.type", format!("{:?}", e.kind).as_str()),
            None => span.record("error.type", "timeout"),
        };
        let failed = |pick: &mut Pick| {
            pick.record(Outcome::Failed, self.now_ms(), &cfg);
            observe::attempt(&model.name, &d.name, Outcome::Failed);
        };
        let resp = match sent {
            None => {
                failed(&mut pick);
                // The request's own deadline passed: no one else may try.
                if until == deadline.whole() {
                    return Attempt::Final(UpstreamError::Timeout.into());
                }
                tracing::warn!(request_id = %call.request_id, model = %model.name, deployment = %d.name,
                    first_byte_ms = first_byte, "no response head by the first-byte deadline: failing over");
                return Attempt::Failed(UpstreamError::Timeout.into());
            }
            Some(Err(e)) => {
                failed(&mut pick);
                // Logs name the deployment, never its URL.
                tracing::warn!(request_id = %call.request_id, model = %model.name, deployment = %d.name,
                    kind = ?e.kind, error = %e.detail, "upstream transport error");
                return Attempt::Failed(match e.kind {
                    TransportErrorKind::Timeout => UpstreamError::Timeout.into(),
                    _ => UpstreamError::Connect { detail: e.detail }.into(),
                });
            }
            Some(Ok(resp)) => resp,
        };
        self.judge(model, (d, pick), (call, bridged), resp, deadline)
            .await
    }

    /// What deployment `d`'s response head means for the request: its
    /// answer, or an error for which another deployment may be tried.
    async fn judge(
        &self,
        model: &Model,
        (d, mut pick): (&Deployment, Pick),
        (call, bridged): (&UpstreamCall, bool),
        resp: http::Response<UpstreamBody<P>>,
        deadline: Deadline,
    ) -> Attempt<P> {
        let cfg = self.config().resilience;
        let status = resp.status().as_u16();
        let outcome = match status {
            429 => Outcome::RateLimited {
                retry_after_ms: retry_after_ms(resp.headers()),
            },
            500.. => Outcome::Failed,
            _ => Outcome::Ok,
        };
        pick.record(outcome, self.now_ms(), &cfg);
        observe::attempt(&model.name, &d.name, outcome);
        if (200..300).contains(&status) {
            return Attempt::Answered(Box::new(Forwarded {
                response: resp,
                pick,
                deployment: d.clone(),
                bridged,
            }));
        }
        let wait_ms = retry_after_ms(resp.headers());
        let body = self
            .read_limited(resp.into_body(), deadline.whole(), MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        let mut err = upstream_error(status, &body);
        if let UpstreamError::OpenAi { retry_after_s, .. } = &mut err {
            *retry_after_s = wait_ms.map(|ms| ms.div_ceil(1000));
        }
        tracing::warn!(request_id = %call.request_id, model = %model.name, deployment = %d.name, status,
            "upstream error status");
        if retryable_status(status) {
            Attempt::Failed(err.into())
        } else {
            Attempt::Final(err.into())
        }
    }

    /// How long deployment `d` may take to send a response head.
    fn first_byte_ms(&self, d: &Deployment, stream: bool) -> u64 {
        let cfg = self.config().first_byte_ms;
        let default = if stream { cfg.stream } else { cfg.buffered };
        d.first_byte_timeout_secs
            .map_or(default, |s| s.saturating_mul(1000))
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
        match key.and_then(|k| k.strip_prefix(crate::secret::ENV_REF)) {
            Some(name) => self.resolve_secret(name).map(Some),
            None => Ok(key.map(str::to_owned)),
        }
    }

    /// The deployment secret `name`, if it is declared and set.
    pub(super) fn resolve_secret(&self, name: &str) -> Result<String, GatewayError> {
        // A record stored before its secret was undeclared resolves nothing.
        let declared = self.config().secret_declared(name);
        match declared.then(|| self.ports().secret(name)).flatten() {
            Some(secret) => Ok(secret),
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
