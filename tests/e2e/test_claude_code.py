"""Claude Code (npm, pinned in tests/clients) through the gateway, offline:
`claude -p` answered by the mock upstream over every backend kind, a tool
turn (the mock calls Claude Code's Bash tool, Claude Code runs it, the
result comes back as a `tool_result` and the mock's final text is printed),
a tool of an MCP server reached through the gateway's `/mcp` (`claude mcp
add --transport http`),
and the real llama.cpp model: with a prompt its context holds (Claude
Code's own system prompt swapped for a line, no tools) it answers, bridged
and natively; with Claude Code's whole prompt, llama.cpp's 400 is passed
on, which Claude Code shows as "Prompt is too long"."""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from harness import ROOT, http, start, stop

CLAUDE = ROOT / "tests" / "clients" / "node_modules" / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"


def claude_code(env, key, model, prompt, cwd, *args, extra_env=None):
    if not CLAUDE.exists():
        pytest.fail("tests/clients is not installed: run `make test` (or npm ci in tests/clients)")
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    envv = {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "dumb", "NO_COLOR": "1",
            "ANTHROPIC_BASE_URL": env.base_url, "ANTHROPIC_API_KEY": key,
            "ANTHROPIC_MODEL": model, "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": model, "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
            "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_MAX_RETRIES": "0", **(extra_env or {})}
    return subprocess.run([str(CLAUDE), "-p", prompt, "--model", model, *args], cwd=cwd, env=envv,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("backend", ["vllm", "llamacpp", "ollama", "openai", "api3", "anthropic"])
def test_claude_code_prints_the_upstreams_answer(env, tmp_path, backend):
    created = env.make_key(quota=10_000_000)
    base_url = env.mock_url + "/v1" if backend in ("openai", "api3") else env.mock_url
    model = env.make_model("mock?tokens=3&no_tools=1", backend=backend, base_url=base_url, api_key="sk-up")
    out = claude_code(env, created["key"], model, "say pong", tmp_path)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])
    assert out.stdout.strip() == "w0 w1 w2", out.stdout
    seen = http("GET", env.mock_url + "/_mock/last").json()
    sent = seen["body"]
    if backend == "anthropic":
        # Forwarded as it came, with Claude Code's betas.
        assert sent["system"] and len(sent["tools"]) > 5 and "thinking" in sent
        assert "claude-code-20250219" in seen["anthropic-beta"]
    elif backend != "ollama":
        # Its system prompt and tools translated, its thinking left out.
        assert sent["messages"][0]["role"] == "system" and len(sent["messages"][0]["content"]) > 1000
        assert len(sent["tools"]) > 5 and "thinking" not in sent
    rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
    assert rows and all(r["endpoint"] == "messages" for r in rows)


def test_claude_code_runs_a_tool_through_the_gateway(env, key, tmp_path):
    # The mock calls Bash with this command, then answers in text once it
    # has the tool's result.
    model = env.make_model("mock?tokens=2&tool=Bash&arg_command=echo tool-ran-$((40+2))")
    out = claude_code(env, key, model, "run the check", tmp_path, "--allowedTools", "Bash(echo:*)")
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])
    assert out.stdout.strip().endswith("w0 w1"), out.stdout
    sent = http("GET", env.mock_url + "/_mock/last").json()["body"]
    results = [m for m in sent["messages"] if m["role"] == "tool"]
    assert results and "tool-ran-42" in results[-1]["content"], sent["messages"][-3:]


def test_claude_code_against_the_real_model_hears_the_context_is_too_small(env, key, tmp_path):
    # The suite's llama.cpp has 1,024 tokens a slot.
    model = env.make_model("smollm2-135m", backend="llamacpp", base_url=env.llama_url)
    out = claude_code(env, key, model, "say pong", tmp_path)
    assert out.returncode != 0
    said = out.stdout + out.stderr
    assert "Prompt is too long" in said and "exceeds the available context size" in said, said[-3000:]


@pytest.fixture(scope="module")
def roomy_llama():
    """The real model with 4,096 tokens a slot: room for Claude Code's request
    without its long system prompt and tools (about a thousand tokens, which
    the suite's 1,024-token slots cannot always hold), and its answer."""
    proc, url = start([sys.executable, str(ROOT / "scripts" / "llama_server.py"), "--threads", "1",
                       "--ctx", "8192"])
    try:
        yield url
    finally:
        stop(proc)


@pytest.mark.parametrize("messages_api", ["bridge", "native"])
def test_claude_code_answered_by_the_real_model(env, tmp_path, roomy_llama, messages_api):
    # With its own short system prompt and no tools, Claude Code's request
    # fits the real model's context, and it answers. How long the tiny
    # model talks is its own affair: Claude Code prints a short answer, or
    # says the answer hit the output cap; either way a whole answer came
    # back through the gateway, and the gateway recorded what it generated.
    created = env.make_key(quota=1_000_000)
    model = env.make_model("smollm2-135m", backend="llamacpp", base_url=roomy_llama, messages_api=messages_api)
    out = claude_code(env, created["key"], model, "Say pong", tmp_path, "--system-prompt", "Answer in one word.",
                      "--tools", "", extra_env={"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "32"})
    said = out.stdout + out.stderr
    answered = out.returncode == 0 and out.stdout.strip()
    capped = "exceeded the 32 output token maximum" in said
    assert answered or capped, said[-3000:]
    for _ in range(100):
        rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
        if rows:
            break
        time.sleep(0.05)
    assert rows and all(r["endpoint"] == "messages" for r in rows)
    assert sum(r["completion_tokens"] for r in rows) > 0, rows


def test_claude_code_uses_a_tool_through_the_mcp_gateway(env, key, tmp_path):
    """Claude Code with ModelGate as its model endpoint and as its MCP server
    (`claude mcp add --transport http`): the mock model calls the MCP tool,
    Claude Code calls it through /mcp, the upstream MCP server answers, and
    the result goes back to the model. One key for both."""
    server = "cc-" + uuid.uuid4().hex[:6]
    proc, url = start([sys.executable, str(ROOT / "tests" / "support" / "mcp_upstream.py"), server])
    sid = env.admin("POST", "/mcp/servers", {"name": server, "url": url}).json()["id"]
    try:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        added = subprocess.run([str(CLAUDE), "mcp", "add", "--transport", "http", "modelgate", env.base_url + "/mcp",
                                "--header", f"Authorization: Bearer {key}"], cwd=tmp_path,
                               env={"PATH": os.environ["PATH"], "HOME": str(home), "DISABLE_TELEMETRY": "1",
                                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"},
                               capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert added.returncode == 0, added.stderr[-2000:]
        tool = f"mcp__modelgate__{server}_echo"
        model = env.make_model(f"mock?tokens=2&tool={tool}&arg_message=via-mcp")
        # Its tools in the request itself, not behind Claude Code's tool
        # search (which the mock model would not use).
        out = claude_code(env, key, model, "use the tool", tmp_path, "--allowedTools", tool,
                          extra_env={"ENABLE_TOOL_SEARCH": "false"})
        assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])
        assert out.stdout.strip().endswith("w0 w1"), out.stdout
        sent = http("GET", env.mock_url + "/_mock/last").json()["body"]
        assert tool in [t["function"]["name"] for t in sent["tools"]]
        results = [m for m in sent["messages"] if m["role"] == "tool"]
        assert results and f"{server}: via-mcp" in json.dumps(results[-1]["content"]), sent["messages"][-3:]
        rows = env.admin("GET", "/usage?from=2020-01-01").json()["data"]
        assert any(r["endpoint"] == "mcp" and r["model"] == f"{server}_echo" for r in rows), rows
    finally:
        env.admin("DELETE", f"/mcp/servers/{sid}")
        stop(proc)
