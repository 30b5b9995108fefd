//! Proxy variables in the environment do not route upstream calls: a proxy
//! would resolve the upstream's name where the egress policy cannot see
//! the address. The check runs in a child process of this test binary,
//! started with the variables set.

use std::time::Duration;

use bytes::Bytes;
use modelgate_core::ports::HttpClient;
use modelgate_native::upstream::UpstreamHttp;
use modelgate_testkit::MockUpstream;

const CHILD: &str = "MG_TEST_PROXY_CHILD";

#[test]
fn upstream_calls_go_direct_whatever_the_proxy_variables_say() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = format!("http://{}", proxy.local_addr().unwrap());
    proxy.set_nonblocking(true).unwrap();
    let mut run = std::process::Command::new(std::env::current_exe().unwrap());
    run.args([
        "--exact",
        "upstream_calls_go_direct_whatever_the_proxy_variables_say",
    ])
    .env(CHILD, "1");
    for k in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"] {
        run.env(k, &at);
    }
    let out = run.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(proxy.accept().is_err(), "the proxy was called");
}

fn child() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mock = MockUpstream::start().await.unwrap();
        let http = UpstreamHttp::new(&modelgate_core::Config::default()).unwrap();
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let req = http::Request::post(format!("{}/v1/chat/completions", mock.url()))
            .header("content-type", "application/json")
            .body(Bytes::from(body))
            .unwrap();
        // Sent to the proxy, the call would never be answered.
        let resp = tokio::time::timeout(Duration::from_secs(30), http.send(req))
            .await
            .expect("the call went to the proxy")
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(mock.stats().requests, 1);
    });
}
