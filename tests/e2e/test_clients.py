"""The clients that speak the Responses API and embeddings, pinned, through
the gateway: the OpenAI Agents SDK, LangChain's OpenAIEmbeddings, the Codex
CLI and the Vercel AI SDK (the last two from tests/clients, installed by
`make`)."""

import asyncio
import json
import os
import subprocess

import openai
import pytest

from harness import CLIENTS, NODE, ROOT, http



def test_agents_sdk_runs_an_agent_with_a_function_tool(env, key):
    from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled

    calls = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    model = env.make_model("mock?tokens=2")
    set_tracing_disabled(True)  # traces would go to api.openai.com
    set_default_openai_client(openai.AsyncOpenAI(base_url=env.base_url + "/v1", api_key=key, max_retries=0))
    agent = Agent(name="weather", instructions="Answer with the tool.", model=model, tools=[get_weather])
    result = asyncio.run(Runner.run(agent, "What is the weather in Paris?"))
    assert calls == ["mock"], "the model's call reached the tool"
    assert result.final_output == " w0 w1"


def test_agents_sdk_chains_responses_by_id(env, key):
    from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    model = env.make_model("mock?tokens=2")
    set_tracing_disabled(True)
    set_default_openai_client(openai.AsyncOpenAI(base_url=env.base_url + "/v1", api_key=key, max_retries=0))
    agent = Agent(name="weather", instructions="Answer with the tool.", model=model, tools=[get_weather])
    # Within a run the tool's result goes back by previous_response_id alone,
    # and the second run continues the first the same way.
    async def two_runs():
        first = await Runner.run(agent, "Weather in Paris?", auto_previous_response_id=True)
        second = await Runner.run(agent, "And tomorrow?", previous_response_id=first.last_response_id,
                                  auto_previous_response_id=True)
        return first, second

    first, second = asyncio.run(two_runs())
    assert (first.final_output, second.final_output) == (" w0 w1", " w0 w1")
    body = http("GET", env.mock_url + "/_mock/last").json()["body"]
    contents = [m.get("content") for m in body["messages"] if m["role"] in ("user", "tool")]
    assert contents == ["Weather in Paris?", "sunny in mock", "And tomorrow?", "sunny in mock"], body["messages"]


def test_langchain_embeddings(env, key):
    from langchain_openai import OpenAIEmbeddings

    model = env.make_model("mock")
    # Without the length check LangChain sends text, not tiktoken ids (whose
    # tables it would download).
    emb = OpenAIEmbeddings(model=model, base_url=env.base_url + "/v1", api_key=key,
                           check_embedding_ctx_length=False, max_retries=0)
    docs = emb.embed_documents(["one two", "three"])
    assert [len(d) for d in docs] == [8, 8]
    assert emb.embed_query("three") == pytest.approx(docs[1], abs=1e-6)


def node_client(*args, **kw):
    if not NODE.exists():
        pytest.fail("tests/clients is not installed: run `make test` (or npm install in tests/clients)")
    return subprocess.run([str(NODE), *args], capture_output=True, text=True, timeout=300, cwd=CLIENTS, **kw)


def test_vercel_ai_sdk_generate_and_stream(env, key):
    model = env.make_model("mock?tokens=3")
    out = node_client("vercel.mjs", env.base_url + "/v1", key, model)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for run in ("generate", "stream"):
        assert got[run]["text"] == " w0 w1 w2", got
        assert got[run]["usage"]["outputTokens"] == 3, got
        assert got[run]["finishReason"] == "stop", got


def test_vercel_ai_sdk_with_stored_responses(env, key):
    model = env.make_model("mock?tokens=3")
    out = node_client("vercel.mjs", env.base_url + "/v1", key, model, "stored")
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"first": " w0 w1 w2", "second": " w0 w1 w2"}
    # Its item reference was resolved: the upstream saw the first answer.
    body = http("GET", env.mock_url + "/_mock/last").json()["body"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == " w0 w1 w2"


def test_codex_exec_completes_a_turn(env, key, tmp_path):
    # Text only: a tool call would make Codex run a command.
    model = env.make_model("mock?tokens=4&no_tools=1")
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{model}"\nmodel_provider = "modelgate"\n\n'
        f'[model_providers.modelgate]\nname = "ModelGate"\nbase_url = "{env.base_url}/v1"\n'
        f'env_key = "MODELGATE_API_KEY"\nwire_api = "responses"\nrequest_max_retries = 0\n'
        f'stream_max_retries = 0\n')
    codex = CLIENTS / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"
    envv = {**os.environ, "CODEX_HOME": str(home), "MODELGATE_API_KEY": key, "NO_COLOR": "1"}
    out = node_client(str(codex), "exec", "--skip-git-repo-check", "say hi", env=envv)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert "w0 w1 w2 w3" in out.stdout, (out.stdout[-3000:], out.stderr[-3000:])
