"""Chat, completions, models and streaming through the official OpenAI SDK."""

import time


def test_chat_completion(env, client):
    model = env.make_model("mock?tokens=5")
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello there"}])
    assert r.choices[0].message.content == " w0 w1 w2 w3 w4"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 2 and r.usage.completion_tokens == 5
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert raw.headers["x-request-id"].startswith("req_")
    assert int(raw.headers["x-ratelimit-remaining-requests"]) >= 0


def test_completion(env, client):
    model = env.make_model("mock?tokens=4")
    r = client.completions.create(model=model, prompt="one two three", max_tokens=3)
    assert r.choices[0].text == " w0 w1 w2"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.total_tokens == 6


def test_models_list_and_get(env, client):
    model = env.make_model()
    ids = [m.id for m in client.models.list()]
    assert model in ids
    assert client.models.retrieve(model).id == model


def _collect(stream):
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


def test_stream_without_include_usage_hides_the_usage_chunk(env, client):
    model = env.make_model("mock?tokens=6")
    chunks, text = _collect(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "a b c"}], stream=True))
    assert text == "".join(f" w{i}" for i in range(6))
    assert all(c.choices for c in chunks), "no choices-less usage chunk"
    assert all(getattr(c, "usage", None) is None for c in chunks)


def test_stream_with_include_usage(env, client):
    model = env.make_model("mock?tokens=6")
    chunks, _ = _collect(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "a b c"}], stream=True,
        stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 6)


def test_stream_is_relayed_as_it_arrives(env, client):
    """Each upstream chunk reaches the client before the next one is made."""
    model = env.make_model("mock?tokens=5&itl_ms=300")
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True)
    arrivals = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 5
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) > 0.1, f"chunks were held back and arrived together: {gaps}"


def test_ollama_backend_streams_as_openai(env, client):
    model = env.make_model("mock?tokens=3", backend="ollama")
    chunks, text = _collect(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert text == " w0 w1 w2"
    assert chunks[-1].usage.completion_tokens == 3


def test_usage_is_recorded_per_key(env):
    created = env.make_key()
    client = env.client(created["key"])
    model = env.make_model("mock?tokens=4")
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "one two"}])
    list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "one two"}], stream=True))
    # The stream settles after its last chunk, which the client may read
    # first; with Redis counters the record lands a moment before the
    # charge. Wait for both, then check them exactly.
    for _ in range(250):
        report = env.admin("GET", f"/usage?key_id={created['id']}").json()
        key = env.admin("GET", f"/keys/{created['id']}").json()
        if report["totals"]["requests"] == 2 and key["quota_reserved"] == 0:
            break
        time.sleep(0.02)
    assert report["totals"] == {"requests": 2, "prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12,
                                "cached_tokens": 0, "errors": 0, "cost_nanos": 0, "cost_usd": 0}
    assert (key["quota_used"], key["quota_reserved"]) == (12, 0)
    assert "key" not in key and "hash" not in key
