"""Anthropic's Messages API in `make bench` (and alone: `make bench-messages`):
the same `/v1/messages` request, one sequential client, called on the mock's
own Messages API, through ModelGate forwarding it natively (an `anthropic`
model), through ModelGate bridging it to the mock's chat completions, and
through LiteLLM's proxy (a `hosted_vllm/` model, which LiteLLM translates
to chat completions too); then what each returns, side by side."""

import json

from harness import http as call
from bench_load import start_litellm

MESSAGES_BODY = b'{"model":"%s","max_tokens":8,"messages":[{"role":"user","content":"hello there"}]}'
ANTHROPIC_HDRS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}

DIRECT = "Mock's own /v1/messages (direct)"
NATIVE = "ModelGate, native (anthropic backend)"
BRIDGED = "ModelGate, bridged to chat (vllm backend)"
LITELLM_BRIDGED = "LiteLLM, bridged to chat (hosted_vllm)"


def model_and_key(base, admin_key, mock_url, backend):
    auth = {"authorization": f"Bearer {admin_key}"}
    name = f"bench-messages-{backend}"
    r = call("POST", base + "/admin/api/models", {"name": name, "backend": backend, "base_url": mock_url,
                                                  "upstream_model": "mock?tokens=8", "api_key": "sk-bench"}, auth)
    assert r.status_code == 201, r.text
    r = call("POST", base + "/admin/api/keys", {"name": "bench-messages", "rpm": 1_000_000, "quota": 10**12}, auth)
    assert r.status_code == 201, r.text
    return name, r.json()["key"]


def bench_messages(measure, rounds, venv, tmp, procs, base, admin_key, mock_url):
    """Latency of each path (`measure(base, path, body, headers)`, the median of
    `rounds`) and one answer of each, for the side-by-side."""
    targets = {DIRECT: (mock_url, b"mock?tokens=8", {**ANTHROPIC_HDRS, "x-api-key": "sk-bench"})}
    for label, backend in ((NATIVE, "anthropic"), (BRIDGED, "vllm")):
        name, key = model_and_key(base, admin_key, mock_url, backend)
        targets[label] = (base, name.encode(), {**ANTHROPIC_HDRS, "x-api-key": key})
    with open(f"{tmp}/litellm-messages.log", "w") as log:
        litellm, ll_base, ll_key = start_litellm(venv, mock_url, tmp, log,
                                                 models=[("bench", "hosted_vllm/mock?tokens=8", f"{mock_url}/v1")])
    procs.append(litellm)
    targets[LITELLM_BRIDGED] = (ll_base, b"bench", {**ANTHROPIC_HDRS, "x-api-key": ll_key})
    latency, answers = {}, {}
    try:
        for label, (url, model, hdrs) in targets.items():
            body = MESSAGES_BODY % model
            latency[label] = rounds(lambda: measure(url, "/v1/messages", body, hdrs))
            r = call("POST", url + "/v1/messages", json.loads(body), hdrs)
            answers[label] = r.json() if r.status_code == 200 else {"status": r.status_code, "body": r.text[:300]}
    finally:
        litellm.terminate()
        litellm.wait(timeout=30)
    return latency, answers


def messages_section(latency, answers):
    """The report's section: latency beside the direct call, then the answers."""
    lines = ["## Anthropic Messages API", "",
             "The same `/v1/messages` request (`max_tokens: 8`, one user turn; the mock answers 8 tokens), one "
             "sequential client, median of three rounds (ms):", "",
             "| path | p50 | p90 | p99 | added p50 |", "|---|---|---|---|---|"]
    # Each figure is (median, lowest, highest) of the rounds.
    direct = latency[DIRECT]["p50"][0]
    for label, p in latency.items():
        added = "" if label == DIRECT else f"{p['p50'][0] - direct:+.3f}"
        lines.append(f"| {label} | {p['p50'][0]:.3f} | {p['p90'][0]:.3f} | {p['p99'][0]:.3f} | {added} |")
    lines += ["", "What each returns for it:", ""]
    for label, answer in answers.items():
        lines += [f"{label}:", "", "```json", json.dumps(answer, sort_keys=True), "```", ""]
    return lines
