"""The Responses API through the official OpenAI SDK: bridged to chat (the
default for self-hosted backends) and native, buffered and streamed, with
a function tool round trip."""

import gzip
import json
import os
import time

import httpx2 as httpx
import openai
import pytest
import zstandard

TOOLS = [{"type": "function", "name": "get_weather", "description": "The weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"], "additionalProperties": False}}]


def native_model(env, upstream):
    # The mock serves /v1/responses like OpenAI (base URL with /v1).
    return env.make_model(upstream, backend="openai", base_url=env.mock_url + "/v1")


def usage_rows(env, key_id, endpoint):
    for _ in range(100):
        rows = [r for r in env.admin("GET", f"/usage?key_id={key_id}").json()["data"] if r["endpoint"] == endpoint]
        if rows:
            return rows
        time.sleep(0.05)
    return []


@pytest.mark.parametrize("backend", ["vllm", "ollama"])
def test_create_through_the_bridge(env, backend):
    created = env.make_key(quota=10_000)
    client = env.client(created["key"])
    model = env.make_model("mock?tokens=3", backend=backend)
    r = client.responses.create(model=model, instructions="be brief", input="hello there",
                                metadata={"run": "e2e"})
    assert r.status == "completed"
    assert r.output_text == " w0 w1 w2"
    assert r.model == model and r.store is True and r.metadata == {"run": "e2e"}
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (4, 3, 7)
    rows = usage_rows(env, created["id"], "responses")
    assert sum(row["prompt_tokens"] + row["completion_tokens"] for row in rows) == 7


def test_streams_follow_the_event_grammar(env, client):
    model = env.make_model("mock?tokens=4")
    events = list(client.responses.create(model=model, input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == " w0 w1 w2 w3"
    assert events[-1].response.usage.output_tokens == 4


def test_the_stream_helper(env, client):
    model = env.make_model("mock?tokens=3")
    with client.responses.stream(model=model, input="x") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == [" w0", " w1", " w2"]
    assert final.output_text == " w0 w1 w2"


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_cut_by_max_output_tokens_is_incomplete(env, client, stream):
    model = env.make_model("mock?tokens=9")
    if stream:
        events = list(client.responses.create(model=model, input="x", max_output_tokens=2, stream=True))
        assert events[-1].type == "response.incomplete"
        r = events[-1].response
    else:
        r = client.responses.create(model=model, input="x", max_output_tokens=2)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text == " w0 w1"


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_tool_round_trip(env, client, stream):
    model = env.make_model("mock?tokens=2")
    question = {"role": "user", "content": "What is the weather in Paris?"}
    if stream:
        with client.responses.stream(model=model, input=[question], tools=TOOLS) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(model=model, input=[question], tools=TOOLS)
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert calls[0].arguments == '{"city":"mock"}'
    follow = [question, calls[0].model_dump(exclude_none=True),
              {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}]
    second = client.responses.create(model=model, input=follow, tools=TOOLS)
    assert second.output[0].type == "message" and second.output_text == " w0 w1"


def test_native_responses_pass_through(env, client):
    model = native_model(env, "mock?tokens=3")
    r = client.responses.create(model=model, input="one two")
    # Named by the gateway, never by the upstream (whose ids may repeat).
    assert r.id.startswith("resp_") and r.id != "resp_mock1" and r.output_text == " w0 w1 w2"
    assert client.responses.retrieve(r.id).output_text == " w0 w1 w2"
    events = list(client.responses.create(model=model, input="one two", stream=True))
    assert events[-1].type == "response.completed"
    assert events[0].response.id == events[-1].response.id != r.id
    assert events[-1].response.usage.output_tokens == 3


def test_a_native_stream_that_breaks_ends_with_response_failed(env, client):
    model = native_model(env, "mock?tokens=6&fault=cut&after=2")
    events = list(client.responses.create(model=model, input="x", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "upstream_stream_cut"
    assert [e.type for e in events].count("response.failed") == 1


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_compressed_request_bodies(env, key, encoding):
    model = env.make_model("mock?tokens=2")
    body = json.dumps({"model": model, "input": "hello"}).encode()
    packed = gzip.compress(body) if encoding == "gzip" else zstandard.ZstdCompressor().compress(body)
    # cargo lambda's emulator answers 500, without invoking the function,
    # for a body that is not UTF-8 text under a JSON content type; as binary
    # it reaches the function (base64 in the event), as through a Function
    # URL. Codex's own headers (JSON + zstd) are proven on the other runtimes.
    binary = os.environ.get("MG_RUNTIME") == "lambda"
    content_type = "application/octet-stream" if binary else "application/json"
    headers = {"authorization": f"Bearer {key}", "content-encoding": encoding, "content-type": content_type}
    r = httpx.post(env.base_url + "/v1/responses", content=packed, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["output"][0]["content"][0]["text"] == " w0 w1"
    # A bomb: 8 MiB of spaces in a few KB is refused on its decoded size.
    bomb = b" " * (8 << 20)
    packed = gzip.compress(bomb, 9) if encoding == "gzip" else zstandard.ZstdCompressor(level=19).compress(bomb)
    assert len(packed) < 1 << 20
    r = httpx.post(env.base_url + "/v1/responses", content=packed, headers=headers, timeout=60)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "request_too_large"
