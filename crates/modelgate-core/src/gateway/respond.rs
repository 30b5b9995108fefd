//! The respond phase: the upstream's answer relayed to the client as a
//! stream (settled when it ends), or read whole, turned into the client's
//! body and settled; and the rate-limit headers every answer carries.

use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};

use super::admission::Admission;
use super::dialect::Answer;
use super::forward::{Calls, Forwarded};
use super::reserve::Reserved;
use super::stream::ModelStream;
use super::{Body, Gateway, LimitKind, Response, limit_headers};
use crate::domain::ApiKey;
use crate::error::GatewayError;
use crate::ports::{Ports, RateDecision};

impl<P: Ports> Gateway<P> {
    /// The client's response from the forwarded answer (see the module docs).
    pub(super) async fn respond(
        &self,
        forwarded: Forwarded<P>,
        calls: &Calls,
        mut answer: Answer,
        admission: Admission<P>,
        deadline_ms: i64,
    ) -> Result<Response<P>, GatewayError> {
        let Forwarded {
            response: upstream,
            mut pick,
            deployment,
            bridged,
        } = forwarded;
        let call = calls.sent(bridged);
        let ignored = HeaderValue::from_str(answer.ignored_tools(bridged)).ok();
        let created_s = self.now_ms() / 1000;
        let mut resp = if call.stream {
            let relay = answer.relay(deployment.backend.relay(call, created_s), bridged);
            let mut stream = ModelStream::new(
                self.clone(),
                upstream.into_body(),
                relay,
                admission,
                deadline_ms,
            )
            .keeping(answer.keep())
            .timing(pick);
            if answer.pings() {
                stream = stream.pinging(self.config().messages_ping_ms);
            }
            let mut r = http::Response::new(Body::Stream(Box::new(stream.into())));
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        } else {
            let read = self.read_body(upstream.into_body(), deadline_ms).await;
            pick.observe_latency(self.now_ms(), &self.config().resilience);
            drop(pick);
            let result = match read {
                Ok(bytes) => {
                    let sent = (call, &deployment, bridged);
                    self.answer_body(answer, sent, &bytes, created_s).await
                }
                Err(e) => Err(e),
            };
            let (body, usage) = match result {
                Ok(ok) => ok,
                Err(e) => return Err(admission.fail(e).await),
            };
            admission.settle(usage, 0, 200, None).await;
            let mut r = http::Response::new(Body::Full(body));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        };
        *resp.status_mut() = StatusCode::OK;
        if let Some(v) = ignored.filter(|v| !v.is_empty()) {
            resp.headers_mut().insert("x-modelgate-ignored-tools", v);
        }
        Ok(resp)
    }

    /// OpenAI's rate-limit headers: the key's requests per minute, and its
    /// tokens per minute if it has a limit.
    pub(super) fn limit_headers(
        &self,
        h: &mut http::HeaderMap,
        key: &ApiKey,
        rate: RateDecision,
        reserved: &Reserved,
    ) {
        let rpm = key.rpm.unwrap_or(self.config().default_rpm);
        limit_headers(h, LimitKind::Requests, rpm, rate.remaining, rate.reset_ms);
        if let Some(t) = reserved.tpm.iter().flatten().next() {
            let d = t.decision;
            limit_headers(h, LimitKind::Tokens, t.limit, d.remaining, d.reset_ms);
        }
    }
}
