"""A real model: llama.cpp's server with SmolLM2-135M, through the gateway."""

import sys
import time

import pytest

from harness import ROOT, start


@pytest.fixture(scope="module")
def llama_model(env):
    return env.make_model("smollm2-135m", backend="llamacpp", base_url=env.llama_url)


def test_real_chat_completion(env, client, llama_model):
    r = client.chat.completions.create(model=llama_model, max_tokens=8, temperature=0,
                                       messages=[{"role": "user", "content": "Say hi"}])
    assert r.choices[0].message.content
    assert r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 0


def test_real_stream_counts_usage(env, llama_model):
    created = env.make_key(quota=100_000)
    client = env.client(created["key"])
    chunks = list(client.chat.completions.create(
        model=llama_model, max_tokens=6, temperature=0, stream=True,
        messages=[{"role": "user", "content": "Count to three"}]))
    assert all(c.choices for c in chunks), "usage chunk stripped for a client that did not ask"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text
    # The gateway asked llama.cpp for usage and charged it, up to the
    # reservation: SmolLM2's chat template adds a default system prompt the
    # gateway's prompt bound does not see, so llama.cpp may report a few
    # tokens more than were reserved; the record keeps what it reported.
    for _ in range(100):
        key = env.admin("GET", f"/keys/{created['id']}").json()
        if key["quota_used"]:
            break
        time.sleep(0.02)
    assert key["quota_reserved"] == 0
    report = env.admin("GET", f"/usage?key_id={created['id']}").json()
    assert report["totals"]["completion_tokens"] <= 6
    assert 0 < key["quota_used"] <= report["totals"]["total_tokens"], (key, report)


def test_real_completion(env, client, llama_model):
    r = client.completions.create(model=llama_model, prompt="The sky is", max_tokens=4, temperature=0)
    assert r.choices[0].text
    assert r.usage.completion_tokens <= 4


def test_real_responses_bridged_and_native(env, client, llama_model):
    # The default for llama.cpp is the bridge; its own /v1/responses too.
    r = client.responses.create(model=llama_model, input="Say hi", max_output_tokens=8, temperature=0)
    assert r.output_text and r.usage.output_tokens <= 8
    events = list(client.responses.create(model=llama_model, input="Say hi", max_output_tokens=6, stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert events[-1].response.output_text
    native = env.make_model("smollm2-135m", backend="llamacpp", base_url=env.llama_url, responses_api="native")
    r = client.responses.create(model=native, input="Say hi", max_output_tokens=8, temperature=0)
    assert r.output_text and r.usage.input_tokens > 0


@pytest.fixture(scope="module")
def llama_embeddings(env):
    """A second llama.cpp server, with embeddings on (llama-server
    --embeddings --pooling mean), on the same real model."""
    proc, url = start([sys.executable, str(ROOT / "scripts" / "llama_server.py"), "--threads", "1",
                       "--embeddings"], timeout=300)
    try:
        yield env.make_model("smollm2-135m", backend="llamacpp", base_url=url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_real_embeddings(env, llama_embeddings):
    created = env.make_key(quota=10_000)
    client = env.client(created["key"])
    r = client.embeddings.create(model=llama_embeddings, input=["hello world", "the sky is blue"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 576  # SmolLM2-135M's width
    floats = client.embeddings.create(model=llama_embeddings, input=["hello world"], encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(r.data[0].embedding, abs=1e-6)
    assert r.usage.prompt_tokens > 0
    for _ in range(100):
        key = env.admin("GET", f"/keys/{created['id']}").json()
        if key["quota_used"]:
            break
        time.sleep(0.05)
    assert key["quota_used"] == r.usage.prompt_tokens + floats.usage.prompt_tokens


def test_real_three_turn_conversation(env, client, llama_model):
    turns = []
    previous = None
    for text in ("My name is Ada.", "I live in Paris.", "What is my name?"):
        r = client.responses.create(model=llama_model, input=text, max_output_tokens=8, temperature=0,
                                    previous_response_id=previous)
        assert r.previous_response_id == previous and r.output_text
        turns.append(r)
        previous = r.id
    # The model saw the earlier turns: each prompt holds the one before,
    # its answer, and more.
    for before, after in zip(turns, turns[1:]):
        assert after.usage.input_tokens > before.usage.input_tokens + before.usage.output_tokens


def test_real_messages_and_token_count(env, key, llama_model):
    import anthropic

    client = anthropic.Anthropic(base_url=env.base_url, api_key=key, max_retries=0, timeout=120)
    ask = [{"role": "user", "content": "Say hi to the gateway"}]
    m = client.messages.create(model=llama_model, max_tokens=8, messages=ask)
    assert m.content and m.content[0].text and m.usage.output_tokens <= 8
    counted = client.messages.with_raw_response.count_tokens(model=llama_model, messages=ask)
    # llama.cpp's own template and tokenizer: the prompt it will be sent.
    assert counted.headers["x-modelgate-token-count"] == "upstream"
    assert counted.parse().input_tokens == m.usage.input_tokens + m.usage.cache_read_input_tokens
    with client.messages.stream(model=llama_model, max_tokens=6, messages=ask) as s:
        text = "".join(s.text_stream)
    assert text


def test_real_messages_natively(env, key):
    # llama.cpp's own /v1/messages: its answer and events pass through.
    import anthropic

    model = env.make_model("smollm2-135m", backend="llamacpp", base_url=env.llama_url, messages_api="native")
    created = env.make_key(quota=100_000)
    client = anthropic.Anthropic(base_url=env.base_url, api_key=created["key"], max_retries=0, timeout=120)
    ask = [{"role": "user", "content": "Say hi"}]
    m = client.messages.create(model=model, max_tokens=6, messages=ask)
    assert not m.id.startswith("msg_"), "llama.cpp's own id, not the bridge's"
    assert m.content[0].text and m.usage.output_tokens <= 6
    with client.messages.stream(model=model, max_tokens=5, messages=ask) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.usage.output_tokens <= 5
    for _ in range(100):
        rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
        if sum(r["requests"] for r in rows) == 2:
            break
        time.sleep(0.05)
    assert all(r["endpoint"] == "messages" for r in rows)
    assert sum(r["completion_tokens"] for r in rows) == m.usage.output_tokens + final.usage.output_tokens
    assert all(r["prompt_tokens"] > 0 for r in rows)
