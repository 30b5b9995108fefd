//! Upstream HTTP: hyper-util's pooled client, with rustls for `https`
//! upstreams, and nothing between it and the core.
//!
//! Not reqwest: its layers (URL parsing and re-encoding, default headers,
//! retry and redirect services, boxed futures) were a fifth of what the
//! proxying stack costs a request (BENCHMARKS.md), and the core needs none
//! of them: it builds the request and follows no redirect.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use modelgate_core::Config;
use modelgate_core::ports::{
    ByteStream, HttpClient, LocalCommand, TransportError, TransportErrorKind,
};

use crate::local::{LocalBody, LocalServers};

/// The system resolver, keeping only addresses the edge policy allows: a
/// name that resolves to a metadata service (or is rebound to one) is never
/// called, whatever the model's URL said.
#[derive(Debug, Clone, Copy)]
struct EgressResolver {
    allow_link_local: bool,
}

type Resolving =
    Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower::Service<Name> for EgressResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let allow = self.allow_link_local;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found
                .filter(|a| modelgate_core::edge::upstream_ip_allowed(a.ip(), allow))
                .collect();
            if kept.is_empty() {
                return Err(std::io::Error::other("no address the egress policy allows"));
            }
            Ok(kept.into_iter())
        })
    }
}

/// The proxy variables other HTTP clients read. Upstreams are called
/// directly whatever they say: a proxy would resolve an upstream's name
/// itself, where the egress policy cannot see the address.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The proxy variables `lookup` finds set, for a warning at start: an
/// operator who set one expects it to be used, and it is not.
pub fn proxy_variables_set(lookup: impl Fn(&str) -> Option<String>) -> Vec<&'static str> {
    PROXY_VARIABLES
        .into_iter()
        .filter(|k| lookup(k).is_some_and(|v| !v.trim().is_empty()))
        .collect()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector whose connections are ready within one bound, or fail:
/// hyper's own connect timeout covers only the TCP handshake, so an
/// upstream that accepted the connection and never finished TLS (or a name
/// that took long to resolve) held the request until the gateway's
/// overall deadline, with no other deployment tried.
#[derive(Debug, Clone)]
struct Bounded<C> {
    inner: C,
    timeout: Duration,
}

type Connecting<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<C> tower::Service<Uri> for Bounded<C>
where
    C: tower::Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Connecting<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(done) => done.map_err(Into::into),
                // The same kind as hyper's TCP timeout: the core's timeout.
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection not ready within the connect timeout",
                )
                .into()),
            }
        })
    }
}

/// Upstream HTTP over a pooled hyper client, and the local MCP servers
/// where the operator allows some.
#[derive(Debug, Clone)]
pub struct UpstreamHttp {
    client: Client<Bounded<HttpsConnector<HttpConnector<EgressResolver>>>, Full<Bytes>>,
    local: Option<Arc<LocalServers>>,
}

impl UpstreamHttp {
    /// A pooled client with `TCP_NODELAY`, whose new connections (name
    /// lookup, TCP, TLS) are ready within the config's connect timeout; the
    /// overall timeout is the gateway's (it also covers the streamed body).
    /// It follows no redirect (a 3xx is the core's upstream error), and
    /// names resolve only to addresses
    /// [`modelgate_core::edge::upstream_ip_allowed`] lets through (the
    /// config's `allow_link_local_upstreams`). `https` upstreams are checked
    /// against the system's roots, HTTP/2 when the server offers it.
    pub fn new(config: &Config) -> Result<Self, std::io::Error> {
        let allow_link_local = config.allow_link_local_upstreams;
        let timeout = Duration::from_millis(config.connect_timeout_ms);
        let mut tcp = HttpConnector::new_with_resolver(EgressResolver { allow_link_local });
        tcp.set_nodelay(true);
        // Shared out among a name's addresses, so that the next is tried.
        tcp.set_connect_timeout(Some(timeout));
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let connector = Bounded {
            inner: connector,
            timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self {
            client,
            local: None,
        })
    }

    /// Run local MCP servers whose programs are among `programs` (none:
    /// no local server).
    #[must_use]
    pub fn with_local_programs(mut self, programs: BTreeSet<String>) -> Self {
        self.local = (!programs.is_empty()).then(|| Arc::new(LocalServers::new(programs)));
        self
    }
}

/// What failed, never where: the client's errors name no URL, and the log
/// line names the endpoint by model and position instead.
fn transport(e: &(dyn std::error::Error + 'static), during_body: bool) -> TransportError {
    let mut detail = e.to_string();
    let mut timed_out = false;
    let mut cause = e.source();
    while let Some(c) = cause {
        timed_out |= c
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        detail.push_str(": ");
        detail.push_str(&c.to_string());
        cause = c.source();
    }
    let kind = if timed_out {
        TransportErrorKind::Timeout
    } else if during_body {
        TransportErrorKind::Broken
    } else {
        TransportErrorKind::Connect
    };
    TransportError { kind, detail }
}

/// A streamed upstream response body.
#[derive(Debug)]
pub enum UpstreamBody {
    /// Over the network.
    Http(Incoming),
    /// From a local MCP server.
    Local(LocalBody),
}

impl ByteStream for UpstreamBody {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, TransportError>> {
        let body = match self {
            Self::Http(body) => body,
            Self::Local(body) => return body.next_chunk().await.map(Ok),
        };
        loop {
            match body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(Ok(data)),
                    // Trailers carry nothing the core reads.
                    Err(_) => continue,
                },
                Err(e) => return Some(Err(transport(&e, true))),
            }
        }
    }
}

impl HttpClient for UpstreamHttp {
    type Body = UpstreamBody;

    async fn send(
        &self,
        mut req: http::Request<Bytes>,
    ) -> Result<http::Response<UpstreamBody>, TransportError> {
        crate::otel::inject(req.headers_mut());
        let resp = self
            .client
            .request(req.map(Full::new))
            .await
            .map_err(|e| transport(&e, false))?;
        Ok(resp.map(UpstreamBody::Http))
    }

    fn may_run(&self, program: &str) -> bool {
        self.local.as_ref().is_some_and(|l| l.may_run(program))
    }

    async fn send_local(
        &self,
        command: LocalCommand,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<UpstreamBody>, TransportError> {
        let Some(local) = &self.local else {
            return Err(TransportError {
                kind: TransportErrorKind::Connect,
                detail: "no local MCP servers here (MG_MCP_COMMANDS)".into(),
            });
        };
        let resp = local.send(command, req).await?;
        Ok(resp.map(UpstreamBody::Local))
    }
}

#[cfg(test)]
mod tests {
    use tower::Service;

    use super::{EgressResolver, TransportErrorKind, proxy_variables_set, transport};

    #[test]
    fn set_proxy_variables_are_named_for_the_warning() {
        let env = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://proxy:3128".to_owned()),
            "http_proxy" => Some(" ".to_owned()),
            _ => None,
        };
        assert_eq!(proxy_variables_set(env), ["HTTPS_PROXY"]);
        assert!(proxy_variables_set(|_| None).is_empty());
    }

    #[tokio::test]
    async fn the_resolver_drops_addresses_the_edge_policy_refuses() {
        let strict = EgressResolver {
            allow_link_local: false,
        };
        let name = |s: &str| s.parse().unwrap();
        assert!(strict.clone().call(name("169.254.169.254")).await.is_err());
        let local: Vec<_> = strict
            .clone()
            .call(name("localhost"))
            .await
            .unwrap()
            .collect();
        assert!(local.iter().all(|a| a.ip().is_loopback()) && !local.is_empty());
        let open = EgressResolver {
            allow_link_local: true,
        };
        assert!(open.clone().call(name("169.254.169.254")).await.is_ok());
    }

    #[tokio::test]
    async fn transport_errors_name_no_address() {
        let http = super::UpstreamHttp::new(&modelgate_core::Config::default()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let req = |url: String| http::Request::post(url).body(bytes::Bytes::new()).unwrap();
        for url in [
            format!("http://127.0.0.1:{port}/v1/chat/completions"),
            "http://metadata.google.internal:8080/v1/x".to_owned(),
        ] {
            let e = modelgate_core::ports::HttpClient::send(&http, req(url.clone()))
                .await
                .unwrap_err();
            for part in [port.to_string().as_str(), "127.0.0.1", "metadata", "/v1/"] {
                assert!(!e.detail.contains(part), "{url}: {}", e.detail);
            }
        }
    }

    #[test]
    fn a_timed_out_cause_anywhere_in_the_chain_is_a_timeout() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let timed_out = Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timeout",
        ));
        let e = transport(&timed_out, false);
        assert_eq!(e.kind, TransportErrorKind::Timeout);
        assert_eq!(e.detail, "client error (Connect): connect timeout");
        let refused = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(transport(&refused, false).kind, TransportErrorKind::Connect);
        assert_eq!(transport(&refused, true).kind, TransportErrorKind::Broken);
    }
}
