"""Embeddings through the official OpenAI SDK: its default base64 and
floats, forwarded to OpenAI-compatible backends and built by the gateway
from Ollama's /api/embed."""

import time

import openai
import pytest


@pytest.mark.parametrize("backend", ["vllm", "ollama"])
def test_base64_and_float_agree(env, backend):
    created = env.make_key(quota=10_000)
    client = env.client(created["key"])
    model = env.make_model("mock", backend=backend)
    texts = ["one two three", "four"]
    b64 = client.embeddings.create(model=model, input=texts)  # the SDK asks for base64
    floats = client.embeddings.create(model=model, input=texts, encoding_format="float")
    assert [d.index for d in b64.data] == [0, 1]
    assert len(b64.data[0].embedding) == 8
    for a, b in zip(b64.data, floats.data):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    assert b64.usage.prompt_tokens == 4
    for _ in range(100):
        key = env.admin("GET", f"/keys/{created['id']}").json()
        if key["quota_used"] == 8:
            break
        time.sleep(0.05)
    assert (key["quota_used"], key["quota_reserved"]) == (8, 0)
    rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
    assert {r["endpoint"] for r in rows} == {"embeddings"}


def test_dimensions_pass_through(env, client):
    model = env.make_model("mock")
    r = client.embeddings.create(model=model, input="x", dimensions=3, encoding_format="float")
    assert len(r.data[0].embedding) == 3


def test_ollama_takes_no_token_ids(env, client):
    model = env.make_model("mock", backend="ollama")
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=model, input=[[1, 2, 3]])
    assert e.value.body["param"] == "input"
