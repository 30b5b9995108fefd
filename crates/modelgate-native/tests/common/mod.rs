//! A gateway wired to real components for tests: the axum router, an
//! in-memory SQLite store, the upstream client and the mock upstream. Calls
//! go through the router without a socket (`oneshot`).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use modelgate_core::domain::ApiKey;
use modelgate_core::ports::{KeyStore, Ports};
use modelgate_core::{Config, Gateway};
use modelgate_native::app::{AppState, router};
use modelgate_native::ports::NativePorts;
use modelgate_native::upstream::UpstreamHttp;
use modelgate_sqlite::SqliteStore;
use modelgate_testkit::MockUpstream;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ADMIN: &str = "test-admin-key-0123456789";

pub struct Harness {
    pub mock: MockUpstream,
    pub gateway: Gateway<NativePorts>,
    pub app: Router,
}

pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data:` payloads of an SSE body.
    pub fn events(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::build(tweak, SqliteStore::in_memory().unwrap()).await
    }

    /// A gateway whose time is `clock`'s: it moves only when the test
    /// advances it.
    pub async fn on_clock(
        clock: &modelgate_testkit::clock::ManualClock,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let store = SqliteStore::in_memory().unwrap();
        Self::assemble(tweak, store, Some(clock.reader())).await
    }

    /// A gateway on `store`.
    pub async fn build(tweak: impl FnOnce(&mut Config), store: SqliteStore) -> Self {
        Self::assemble(tweak, store, None).await
    }

    async fn assemble(
        tweak: impl FnOnce(&mut Config),
        store: SqliteStore,
        clock: Option<modelgate_native::ports::Clock>,
    ) -> Self {
        let mock = MockUpstream::start().await.unwrap();
        let mut config = Config {
            admin_key_hash: Some(modelgate_core::auth::hash_key(ADMIN).into()),
            ..Config::default()
        };
        config.resilience.backoff_ms = 1;
        tweak(&mut config);
        let http = UpstreamHttp::new(&config).unwrap();
        // The tests' own clients are reqwest's, with rustls.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut ports = NativePorts::new(http, store);
        if let Some(clock) = clock {
            ports = ports.with_clock(clock);
        }
        let gateway = Gateway::new(ports, config);
        let app = router(AppState {
            gateway: gateway.clone(),
            peer_ip: modelgate_native::app::socket_peer,
            admin_dir: "../../admin".into(),
        });
        Self { mock, gateway, app }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let body = body.map(|v| v.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, path, &headers, body).await
    }

    /// Any bytes as the body, with the given headers (and a JSON content type).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut b = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.request(method, path, Some(ADMIN), body).await
    }

    /// Create a key; returns (plaintext, id).
    pub async fn key(&self, body: Value) -> (String, String) {
        let a = self.admin("POST", "/admin/api/keys", Some(body)).await;
        assert_eq!(a.status, 201, "{}", a.text());
        let v = a.json();
        (
            v["key"].as_str().unwrap().to_owned(),
            v["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Create a model on the mock; returns its id.
    pub async fn model(&self, name: &str, backend: &str, upstream: &str) -> String {
        self.model_at(name, backend, &self.mock.url(), upstream, json!({}))
            .await
    }

    pub async fn model_at(
        &self,
        name: &str,
        backend: &str,
        base: &str,
        upstream: &str,
        extra: Value,
    ) -> String {
        let mut body =
            json!({"name": name, "backend": backend, "base_url": base, "upstream_model": upstream});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let a = self.admin("POST", "/admin/api/models", Some(body)).await;
        assert_eq!(a.status, 201, "{}", a.text());
        a.json()["id"].as_str().unwrap().to_owned()
    }

    pub async fn chat(&self, key: &str, body: Value) -> Answer {
        self.request("POST", "/v1/chat/completions", Some(key), Some(body))
            .await
    }

    pub async fn stored_key(&self, id: &str) -> ApiKey {
        self.gateway
            .ports()
            .store()
            .get_key(id)
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn usage(&self) -> Value {
        self.admin("GET", "/admin/api/usage", None).await.json()
    }

    /// Wait (bounded) until `cond` holds for the stored key.
    pub async fn wait_key(&self, id: &str, cond: impl Fn(&ApiKey) -> bool) -> ApiKey {
        for _ in 0..200 {
            let k = self.stored_key(id).await;
            if cond(&k) {
                return k;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stored_key(id).await
    }
}

/// The harness's router behind the native listener on a loopback port,
/// until [`Server::stop`].
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<bool>,
}

impl Server {
    pub async fn start(h: &Harness, limits: modelgate_native::listener::Limits) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = h.app.clone();
        let task = tokio::spawn(modelgate_native::listener::serve(
            listener,
            app,
            limits,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shut down; whether the drain finished in time.
    pub async fn stop(mut self) -> bool {
        let _ = self.stop.take().map(|s| s.send(()));
        (&mut self.task).await.unwrap()
    }
}

/// POST `body` as JSON to `url` with `key`.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
}

/// The URL of a port nothing listens on (connections are refused).
pub fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

pub fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there friend"}]})
}
