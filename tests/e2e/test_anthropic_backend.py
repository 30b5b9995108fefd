"""The `anthropic` backend, against the mock's Messages API: OpenAI chat and
Responses clients reach it by translation, Anthropic clients natively (their
version, betas and blocks intact), and cost counts cache reads and writes at
their prices."""

import time

import anthropic
import openai
import pytest

from harness import free_port, http

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
# USD per million tokens, large so that a few tokens cost whole nano-dollars.
PRICES = {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75, "cache_write_1h": 6.0}


def claude_model(env, options="tokens=3", **extra):
    return env.make_model(f"mock?{options}", backend="anthropic", base_url=env.mock_url,
                          api_key="sk-ant-upstream", **extra)


def last(env):
    return http("GET", env.mock_url + "/_mock/last").json()


def test_a_chat_client_reaches_claude(env, client):
    model = claude_model(env)
    r = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}])
    assert r.choices[0].message.content == " w0 w1 w2"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (4, 3)
    seen = last(env)
    assert seen["x-api-key"] == "sk-ant-upstream" and seen["authorization"] is None
    assert seen["anthropic-version"] == "2023-06-01"
    assert seen["body"]["system"] == "Be brief." and seen["body"]["max_tokens"] == 4096
    assert seen["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    chunks = list(client.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "hi"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " w0 w1 w2"
    assert chunks[-1].usage.completion_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_translate_both_ways(env, client, stream):
    model = claude_model(env)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=ask, tools=[WEATHER], stream=True))
        calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
        name = calls[0][0].function.name
        call_id = calls[0][0].id
        args = "".join(c[0].function.arguments or "" for c in calls)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish == ["tool_calls"]
    else:
        r = client.chat.completions.create(model=model, messages=ask, tools=[WEATHER])
        call = r.choices[0].message.tool_calls[0]
        name, call_id, args = call.function.name, call.id, call.function.arguments
        assert r.choices[0].finish_reason == "tool_calls"
    assert (name, args) == ("get_weather", '{"city":"mock"}')
    follow = ask + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]
    r = client.chat.completions.create(model=model, messages=follow, tools=[WEATHER])
    assert r.choices[0].message.content == " w0 w1 w2"
    sent = last(env)["body"]["messages"]
    assert sent[1]["content"] == [{"type": "tool_use", "id": call_id, "name": name, "input": {"city": "mock"}}]
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}]


def test_a_responses_client_reaches_claude_through_the_bridge(env, client):
    model = claude_model(env)
    r = client.responses.create(model=model, input="hello there", instructions="Be brief.")
    assert r.output_text == " w0 w1 w2" and r.usage.output_tokens == 3
    assert last(env)["body"]["system"] == "Be brief."


def test_an_anthropic_client_is_forwarded_natively(env, key):
    model = claude_model(env)
    c = anthropic.Anthropic(base_url=env.base_url, api_key=key, max_retries=0,
                            default_headers={"anthropic-beta": "interleaved-thinking-2025-05-14,future-beta-2027-01-01"})
    history = [{"role": "user", "content": "think"},
               {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "EqQBCgIYAh=="},
                                                 {"type": "text", "text": "done"}]},
               {"role": "user", "content": [{"type": "text", "text": "again", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]
    m = c.messages.create(model=model, max_tokens=100, messages=history,
                          extra_body={"context_management": {"edits": []}})
    assert m.id == "msg_mock1" and m.content[0].text == " w0 w1 w2"
    seen = last(env)
    assert seen["anthropic-beta"] == "interleaved-thinking-2025-05-14,future-beta-2027-01-01"
    assert seen["anthropic-version"] == "2026-10-21"
    body = seen["body"]
    assert body["messages"] == history and body["context_management"] == {"edits": []}
    assert body["model"] == "mock?tokens=3"
    with c.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == " w0 w1 w2" and final.usage.output_tokens == 3


def test_cost_counts_cache_reads_and_writes(env):
    created = env.make_key(quota=1_000_000)
    model = claude_model(env, "tokens=2&cached=3&cache_write=2&cache_write_1h=1", prices=PRICES)
    c = anthropic.Anthropic(base_url=env.base_url, api_key=created["key"], max_retries=0)
    m = c.messages.create(model=model, max_tokens=10,
                          messages=[{"role": "user", "content": "one two three four five six seven"}])
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (1, 3, 3)
    for _ in range(200):
        rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
        if rows:
            break
        time.sleep(0.05)
    row = rows[0]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 2)
    # 1 fresh, 3 read, 2 written for 5 minutes, 1 for an hour; 2 out.
    usd_per_m = 1 * 3.0 + 3 * 0.3 + 2 * 3.75 + 1 * 6.0 + 2 * 15.0
    assert row["cost_nanos"] == round(usd_per_m * 1000)


def test_what_claude_cannot_serve_is_refused(env, client):
    model = claude_model(env)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model, prompt="x")
    assert "Anthropic" in e.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, n=2, messages=[{"role": "user", "content": "x"}])


def test_an_upstream_error_keeps_anthropics_words(env, key):
    model = claude_model(env, "status=529")
    c = anthropic.Anthropic(base_url=env.base_url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as e:
        c.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert "mock upstream error 529" in e.value.message


def test_anthropic_deployments_fail_over(env):
    # A dead Anthropic deployment and a live one: every request is answered
    # by the live one, as for any backend.
    down = f"http://127.0.0.1:{free_port()}"
    model = env.make_model(deployments=[
        {"name": "claude-down", "backend": "anthropic", "base_url": down, "upstream_model": "mock?tokens=2",
         "api_key": "sk-ant"},
        {"name": "claude-up", "backend": "anthropic", "base_url": env.mock_url, "upstream_model": "mock?tokens=2",
         "api_key": "sk-ant"},
    ])
    created = env.make_key(rpm=10_000)
    c = anthropic.Anthropic(base_url=env.base_url, api_key=created["key"], max_retries=0)
    for _ in range(6):
        m = c.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        assert m.content[0].text == " w0 w1"
    rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
    assert {r["deployment"] for r in rows} == {"claude-up"}
    assert sum(r["requests"] for r in rows) == 6
