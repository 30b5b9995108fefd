//! `modelgate-streamload`: keep N streaming chat completions in flight and
//! report what a client sees (for `make bench`; load tools such as oha do not
//! read SSE event by event).
//!
//! `modelgate-streamload --url http://127.0.0.1:PORT --model M [--key K]
//! --streams N --secs T`: N workers, started evenly over the first quarter of
//! the run, each opening one stream after another until T seconds have
//! passed. Streams started after the ramp are measured. The upstream must be
//! the mock with `stamp=1`, so every chunk carries its send time. Prints one
//! JSON object: time to first byte, per-chunk delivery delay (client receive
//! time minus upstream send time), gaps between chunks, errors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use modelgate_testkit::mock::unix_micros;
use serde_json::{Value, json};

#[derive(Default)]
struct Samples {
    ttfb_ms: Vec<f64>,
    delay_ms: Vec<f64>,
    gap_ms: Vec<f64>,
    streams: u64,
    errors: u64,
}

impl Samples {
    fn merge(&mut self, o: Samples) {
        self.ttfb_ms.extend(o.ttfb_ms);
        self.delay_ms.extend(o.delay_ms);
        self.gap_ms.extend(o.gap_ms);
        self.streams += o.streams;
        self.errors += o.errors;
    }
}

fn summary(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((q * v.len() as f64) as usize).min(v.len() - 1)];
    json!({"n": v.len(), "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": v[v.len() - 1]})
}

/// The send time the mock stamped into one SSE event, if any.
fn stamp(event: &[u8]) -> Option<u64> {
    const TAG: &[u8] = b"\"mock_sent_us\":";
    let at = event.windows(TAG.len()).position(|w| w == TAG)? + TAG.len();
    let digits: Vec<u8> = event[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

async fn one_stream(req: reqwest::RequestBuilder, out: &mut Samples) -> Result<(), String> {
    let t0 = Instant::now();
    let resp = req.send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let mut body = resp.bytes_stream();
    let (mut buf, mut first, mut last) = (Vec::new(), None, None::<Instant>);
    let mut done = false;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let (now, now_us) = (Instant::now(), unix_micros());
        first.get_or_insert(now - t0);
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            done |= event.starts_with(b"data: [DONE]");
            if let Some(sent) = stamp(&event) {
                out.delay_ms
                    .push(now_us.saturating_sub(sent) as f64 / 1000.0);
                if let Some(prev) = last {
                    out.gap_ms.push((now - prev).as_secs_f64() * 1000.0);
                }
                last = Some(now);
            }
        }
    }
    if !done {
        return Err("stream ended without [DONE]".into());
    }
    out.ttfb_ms
        .push(first.unwrap_or_default().as_secs_f64() * 1000.0);
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|p| Some((p[0].trim_start_matches('-').to_owned(), p.get(1)?.clone())))
        .collect();
    let arg = |k: &str| args.get(k).cloned().unwrap_or_default();
    let streams: u64 = arg("streams").parse().unwrap_or(100);
    let secs: f64 = arg("secs").parse().unwrap_or(10.0);
    let url = format!("{}/v1/chat/completions", arg("url"));
    let body = json!({"model": arg("model"), "stream": true,
        "messages": [{"role": "user", "content": "hello there"}]})
    .to_string();
    let key = args.get("key").cloned();

    // reqwest is built without a default crypto provider (see the workspace).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .expect("an HTTP client");
    let start = Instant::now();
    let ramp = Duration::from_secs_f64(secs / 4.0);
    let stop = start + Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..streams)
        .map(|i| {
            let (client, url, body, key) = (client.clone(), url.clone(), body.clone(), key.clone());
            tokio::spawn(async move {
                tokio::time::sleep(ramp.mul_f64(i as f64 / streams as f64)).await;
                let mut kept = Samples::default();
                while Instant::now() < stop {
                    let measured = Instant::now() >= start + ramp;
                    let mut req = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    if let Some(k) = &key {
                        req = req.bearer_auth(k);
                    }
                    let mut s = Samples::default();
                    match one_stream(req, &mut s).await {
                        Ok(()) => s.streams = 1,
                        Err(e) => {
                            eprintln!("stream failed: {e}");
                            s = Samples {
                                errors: 1,
                                ..Samples::default()
                            };
                        }
                    }
                    if measured {
                        kept.merge(s);
                    }
                }
                kept
            })
        })
        .collect();
    let mut all = Samples::default();
    for w in workers {
        if let Ok(s) = w.await {
            all.merge(s);
        }
    }
    println!(
        "{}",
        json!({"streams": all.streams, "errors": all.errors, "ttfb_ms": summary(all.ttfb_ms),
            "delay_ms": summary(all.delay_ms), "gap_ms": summary(all.gap_ms)})
    );
}
