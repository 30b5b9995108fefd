//! Micro-benchmarks of the gateway's pure hot paths (`make bench`):
//! admitting a request (parse + key hash + limiter decision + upstream
//! request build) and relaying one stream chunk (SSE pass-through with
//! usage pick-up, Ollama NDJSON transcoded to SSE).

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use modelgate_core::backend::{BackendKind, Target, UpstreamCall};
use modelgate_core::request::{self, Endpoint};
use modelgate_core::{auth, limiter};

const BODY: &[u8] = br#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about gateways and latency, please."}],"temperature":0.7,"max_tokens":128,"stream":true,"stream_options":{"include_usage":true}}"#;

fn call(req: &request::ProxyRequest) -> UpstreamCall {
    UpstreamCall {
        endpoint: Endpoint::Chat,
        body: req.body.clone(),
        public_model: "gpt-4o-mini".into(),
        request_id: "req_0123456789abcdef01234567".into(),
        stream: req.stream,
        client_include_usage: req.include_usage,
        upstream_include_usage: true,
        injected_max_tokens: None,
        anthropic_headers: Vec::new(),
    }
}

fn admission(c: &mut Criterion) {
    let key = "mg-0123456789abcdef0123456789abcdef0123456789abcdef";
    c.bench_function("admit: parse + hash + GCRA + build upstream request", |b| {
        b.iter(|| {
            let req = request::parse(Endpoint::Chat, black_box(BODY)).unwrap();
            let hash = auth::hash_key(black_box(key));
            let (decision, _) = limiter::gcra(Some(1_000_000), 1_000_500, 60);
            let target = Target {
                base_url: "https://api.openai.com/v1",
                model: "up-model",
                api_key: Some("sk-upstream"),
            };
            let upstream = BackendKind::Openai.build(&target, &call(&req)).unwrap();
            black_box((hash, decision, upstream));
        })
    });
}

fn chunks(c: &mut Criterion) {
    let req = request::parse(Endpoint::Chat, BODY).unwrap();
    let call = call(&req);
    let sse = b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
    c.bench_function("relay one SSE chunk (OpenAI-compatible)", |b| {
        let mut relay = BackendKind::Vllm.relay(&call, 0);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            relay.feed(black_box(sse), &mut out);
            black_box(&out);
        })
    });
    let ndjson = b"{\"model\":\"llama3.2\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\" token\"},\"done\":false}\n";
    c.bench_function("transcode one Ollama NDJSON chunk to SSE", |b| {
        let mut relay = BackendKind::Ollama.relay(&call, 0);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            relay.feed(black_box(ndjson), &mut out);
            black_box(&out);
        })
    });
}

criterion_group!(benches, admission, chunks);
criterion_main!(benches);
