//! ModelGate on Cloudflare Workers: the same core, with D1 for keys, models,
//! usage and exact counters, KV as a short-lived key cache, and `fetch` to
//! reach upstreams.
//!
//! # Layout
//! - `lib.rs`: the `fetch` entry. It builds the gateway once per isolate
//!   from the bindings, reads the request body within the limit, calls
//!   [`Gateway::handle`], and streams the answer back; a stream's
//!   settlement runs when it ends, or under `waitUntil` when the client
//!   goes away first.
//! - `d1.rs`: D1 store and rate limiter, KV key cache, and the count of
//!   round trips to both that `GET /metrics` serves (**binding IO**).
//! - `fetch.rs`: upstream HTTP on `fetch` (**network IO**).

mod d1;
mod fetch;

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use modelgate_core::domain::{Ask, Grant, Lease};
use modelgate_core::error::{GatewayError, RequestError, StoreError};
use modelgate_core::ports::{Ports, RateDecision, StepAndReserve};
use modelgate_core::{Body, Config, ErrorShape, Gateway, Peer, ResponseStream};
use worker::{Context, Env, Headers, Request, Response, event};

use crate::d1::D1Store;
use crate::fetch::FetchHttp;

/// The Worker's ports.
pub(crate) struct WorkerPorts {
    http: FetchHttp,
    store: D1Store,
    env: Env,
}

impl Ports for WorkerPorts {
    type Http = FetchHttp;
    type Store = D1Store;
    type Accounts = D1Store;
    type Limiter = D1Store;

    fn http(&self) -> &FetchHttp {
        &self.http
    }

    fn store(&self) -> &D1Store {
        &self.store
    }

    fn accounts(&self) -> &D1Store {
        &self.store
    }

    fn limiter(&self) -> &D1Store {
        &self.store
    }

    async fn step_and_reserve(
        &self,
        subject: &str,
        per_minute: u32,
        now_ms: i64,
        lease: &Lease,
        ask: &Ask,
    ) -> Result<(RateDecision, Option<Grant>), StoreError> {
        self.store
            .step_and_reserve(subject, per_minute, now_ms, lease, ask)
            .await
    }

    fn now_ms(&self) -> i64 {
        worker::Date::now().as_millis() as i64
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // crypto.getRandomValues; without it no key may be issued.
        if let Err(e) = getrandom::fill(buf) {
            panic!("crypto.getRandomValues failed: {e}");
        }
    }

    async fn sleep(&self, ms: u64) {
        worker::Delay::from(Duration::from_millis(ms)).await;
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + 'static) {
        worker::wasm_bindgen_futures::spawn_local(task);
    }

    fn secret(&self, name: &str) -> Option<String> {
        setting(&self.env, name)
    }

    fn metrics(&self) -> Option<String> {
        Some(self.store.trips().render())
    }
}

thread_local! {
    /// One gateway per isolate, so its routing state (load, latency,
    /// ejections) sees every request the isolate serves.
    static GATEWAY: OnceCell<Gateway<WorkerPorts>> = const { OnceCell::new() };
}

fn setting(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
}

/// One `console.log` line per event, written when the event is complete.
struct ConsoleLine(Vec<u8>);

impl std::io::Write for ConsoleLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleLine {
    fn drop(&mut self) {
        worker::console_log!("{}", String::from_utf8_lossy(&self.0).trim_end());
    }
}

/// The core's structured log lines as JSON on the Worker's console (Workers
/// Logs / `wrangler tail`). No timestamps: the platform stamps each line,
/// and the system clock is not readable from wasm32.
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .without_time()
        .with_max_level(tracing::Level::INFO)
        .with_writer(|| ConsoleLine(Vec::new()))
        .try_init();
}

fn gateway(env: &Env) -> worker::Result<Gateway<WorkerPorts>> {
    if let Some(g) = GATEWAY.with(|g| g.get().cloned()) {
        return Ok(g);
    }
    init_logging();
    let config = Config::from_lookup(|k| setting(env, k))
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let store = D1Store::new(env.d1("DB")?, env.kv("KEY_CACHE")?);
    let ports = WorkerPorts {
        http: FetchHttp,
        store,
        env: env.clone(),
    };
    let g = Gateway::new(ports, config);
    GATEWAY.with(|cell| {
        let _ = cell.set(g.clone());
    });
    Ok(g)
}

/// The admin panel: static assets, served with the panel's security headers.
async fn admin_asset(req: Request, env: &Env) -> worker::Result<Response> {
    let resp = env.assets("ASSETS")?.fetch_request(req).await?;
    let headers = Headers::new();
    for (name, value) in resp.headers().entries() {
        headers.set(&name, &value)?;
    }
    for (name, value) in modelgate_core::ADMIN_PANEL_HEADERS {
        headers.set(name, value)?;
    }
    Ok(resp.with_headers(headers))
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let path = req.path();
    if path == "/" || path == "/admin" {
        return Response::redirect_with_status(req.url()?.join("/admin/")?, 307);
    }
    if path.starts_with("/admin/") && !path.starts_with("/admin/api/") {
        return admin_asset(req, &env).await;
    }
    let gateway = gateway(&env)?;
    let mut builder = http::Request::builder()
        .method(req.method().as_ref())
        .uri(req.url()?.as_str());
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    let Ok(head) = builder.body(()) else {
        let bad = RequestError::invalid("The request could not be read.", None);
        return convert(
            gateway.reject(&GatewayError::from(bad), ErrorShape::OpenAi),
            None,
        );
    };
    let (mut head, ()) = head.into_parts();
    // Cloudflare sets the client address; the core's edge policy decides
    // what else counts.
    let ip = req
        .headers()
        .get("cf-connecting-ip")?
        .and_then(|v| v.parse().ok());
    let peer = Peer { ip };
    // An unknown route, a wrong method, a missing or bad key, then a body
    // announced over the limit, are refused before a byte of the body is
    // read; a route that takes no body never reads one.
    let admitted = match gateway.check_head(&mut head, peer).await {
        Ok(a) => a,
        Err(refused) => return convert(refused, None),
    };
    if !admitted.reads_body {
        let resp = gateway
            .handle(http::Request::from_parts(head, Bytes::new()), peer)
            .await;
        return convert(resp, Some(Rc::new(ctx)));
    }
    // Read the body as it arrives and stop at the limit: never buffer more.
    let (limit, shape) = (admitted.body_limit, admitted.shape);
    let mut body = Vec::new();
    if let Ok(mut chunks) = req.stream() {
        while let Some(chunk) = chunks.next().await {
            let Ok(chunk) = chunk else {
                let bad = RequestError::invalid("The request body could not be read.", None);
                return convert(gateway.reject(&GatewayError::from(bad), shape), None);
            };
            if body.len() + chunk.len() > limit {
                let err = RequestError::BodyTooLarge { limit };
                return convert(gateway.reject(&err.into(), shape), None);
            }
            body.extend_from_slice(&chunk);
        }
    }
    let core_req = http::Request::from_parts(head, Bytes::from(body));
    let ctx = Rc::new(ctx);
    let resp = handle_to_the_end(&gateway, core_req, peer, &ctx).await?;
    convert(resp, Some(ctx))
}

/// Serve the request under `waitUntil`, so that a client that hangs up
/// before the answer does not cut the handler off mid-way (the runtime
/// stops what the request started, but for work it was told to wait for):
/// the request is answered and settled in full. If the answer can no
/// longer be handed over, its stream is settled here.
async fn handle_to_the_end(
    gateway: &Gateway<WorkerPorts>,
    req: http::Request<Bytes>,
    peer: Peer,
    ctx: &Context,
) -> worker::Result<modelgate_core::Response<WorkerPorts>> {
    let (answer, answered) = futures_channel::oneshot::channel();
    let gateway = gateway.clone();
    ctx.wait_until(async move {
        let resp = gateway.handle(req, peer).await;
        if let Err(unsent) = answer.send(resp)
            && let Body::Stream(mut stream) = unsent.into_body()
            && let Some(settle) = stream.take_settlement()
        {
            settle.await;
        }
    });
    answered.await.map_err(|_| {
        worker::Error::RustError("the request's handler ended without an answer".into())
    })
}

/// Runs the settlement under `waitUntil` if the stream is dropped before it
/// ended (the client went away).
struct SettleGuard {
    stream: Box<ResponseStream<WorkerPorts>>,
    ctx: Option<Rc<Context>>,
}

impl Drop for SettleGuard {
    fn drop(&mut self) {
        if let Some(settle) = self.stream.take_settlement() {
            match &self.ctx {
                Some(ctx) => ctx.wait_until(settle),
                None => worker::wasm_bindgen_futures::spawn_local(settle),
            }
        }
    }
}

fn convert(
    resp: modelgate_core::Response<WorkerPorts>,
    ctx: Option<Rc<Context>>,
) -> worker::Result<Response> {
    let (parts, body) = resp.into_parts();
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            headers.set(name.as_str(), v)?;
        }
    }
    let out = match body {
        Body::Full(bytes) => Response::from_bytes(bytes.to_vec())?,
        Body::Stream(stream) => {
            let guard = SettleGuard { stream, ctx };
            let chunks = stream::unfold(guard, |mut g| async move {
                match g.stream.next_chunk().await {
                    Some(bytes) => Some((Ok::<Vec<u8>, worker::Error>(bytes.to_vec()), g)),
                    None => {
                        // Finished: settle before the body ends, so usage is
                        // recorded when the client sees the end; under
                        // waitUntil, so a client that goes away meanwhile
                        // does not cut the settlement off.
                        if let Some(settle) = g.stream.take_settlement() {
                            match &g.ctx {
                                Some(ctx) => {
                                    let (done, settled) = futures_channel::oneshot::channel();
                                    ctx.wait_until(async move {
                                        settle.await;
                                        let _ = done.send(());
                                    });
                                    let _ = settled.await;
                                }
                                None => settle.await,
                            }
                        }
                        None
                    }
                }
            });
            Response::from_stream(chunks)?
        }
    };
    Ok(out.with_status(parts.status.as_u16()).with_headers(headers))
}
