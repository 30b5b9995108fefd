//! The obligation to settle: every admitted request is settled exactly once,
//! whatever happens to the client or to the future serving it.
//!
//! [`Admission`] is made when quota is reserved and must be consumed by a
//! settlement. If it is dropped first (the client hung up and the runtime
//! dropped the handler, a drain timed out), its `Drop` hands a settlement
//! to the runtime's detached work ([`Ports::spawn`]): a request abandoned
//! before any answer is recorded as `client_disconnected`, charged nothing,
//! and its reservation released; one dropped while its settlement was being
//! written writes that settlement again (settling is idempotent per request
//! id). The runtimes no longer need guards of their own.

use super::Gateway;
use super::settle::Ctx;
use crate::backend::{BackendKind, Usage};
use crate::cost::Prices;
use crate::domain::Settlement;
use crate::error::GatewayError;
use crate::ports::Ports;

/// The status recorded for a request whose client went away before any
/// answer (nginx's "client closed request").
const CLIENT_CLOSED: u16 = 499;

enum State {
    /// Nothing settled yet.
    Open,
    /// This settlement is being written.
    Settling(Box<Settlement>),
    /// Settled.
    Done,
}

/// An admitted request's settlement, owed (see the module docs).
pub(super) struct Admission<P: Ports> {
    gateway: Gateway<P>,
    ctx: Ctx,
    state: State,
}

impl<P: Ports> Admission<P> {
    pub(super) fn new(gateway: Gateway<P>, ctx: Ctx) -> Self {
        crate::observe::admitted();
        Self {
            gateway,
            ctx,
            state: State::Open,
        }
    }

    pub(super) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Name the deployment that served the request (or was tried last)
    /// and, if one answered, its backend and own prices.
    pub(super) fn served_by(
        &mut self,
        answered: Option<(BackendKind, Option<Prices>)>,
        deployment: Option<String>,
    ) {
        if let Some((backend, prices)) = answered {
            self.ctx.backend = backend;
            self.ctx.prices = prices.or(self.ctx.prices);
        }
        self.ctx.deployment = deployment;
    }

    /// Settle with what is known now (see [`Ctx::settlement`]).
    pub(super) async fn settle(
        mut self,
        usage: Option<Usage>,
        output_chunks: i64,
        status: u16,
        error: Option<String>,
    ) {
        let now = self.gateway.now_ms();
        let s = self
            .ctx
            .settlement(usage, output_chunks, status, error, now);
        crate::observe::settled(&s.usage);
        crate::observe::request_settled(&self.ctx.span, &s.usage);
        self.state = State::Settling(Box::new(s.clone()));
        self.gateway.settle(s.clone()).await;
        self.state = State::Done;
        self.give_back(&s).await;
    }

    /// Settle a request that failed before anything reached the client
    /// (nothing generated: nothing charged), and hand the error back.
    pub(super) async fn fail(self, e: GatewayError) -> GatewayError {
        let status = e.status().as_u16();
        self.settle(None, 0, status, Some(e.code())).await;
        e
    }

    /// Give back the tokens per minute the request took and did not use.
    async fn give_back(&self, s: &Settlement) {
        let c = &self.ctx;
        if let Some(t) = c.reserved.tpm.iter().flatten().next() {
            let unused = t.tokens - s.usage.total_tokens();
            let (key, model) = (&c.key_id, &c.model);
            self.gateway
                .give_back(key, model, &c.reserved.tpm, unused)
                .await;
        }
    }
}

impl<P: Ports> Drop for Admission<P> {
    fn drop(&mut self) {
        let s = match std::mem::replace(&mut self.state, State::Done) {
            State::Done => return,
            State::Settling(s) => *s,
            State::Open => {
                let error = Some("client_disconnected".to_owned());
                let now = self.gateway.now_ms();
                let s = self.ctx.settlement(None, 0, CLIENT_CLOSED, error, now);
                crate::observe::settled(&s.usage);
                crate::observe::request_settled(&self.ctx.span, &s.usage);
                s
            }
        };
        let gateway = self.gateway.clone();
        let (key, model) = (self.ctx.key_id.clone(), self.ctx.model.clone());
        let tpm = self.ctx.reserved.tpm;
        self.gateway.ports().spawn(async move {
            let used = s.usage.total_tokens();
            gateway.settle(s).await;
            if let Some(t) = tpm.iter().flatten().next() {
                gateway.give_back(&key, &model, &tpm, t.tokens - used).await;
            }
        });
    }
}
