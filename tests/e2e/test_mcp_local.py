"""Local (stdio) MCP servers. On the native server a command an admin
registers, among the programs the operator allows (MG_MCP_COMMANDS), runs
as one child with only the environment its server declares, shared by every
session: served at `/mcp` in both eras like any server, progress and
cancellation passed through, started again after it dies or its command
changes. The reference `server-everything` runs this way too. The Worker
and the Lambda run no commands: they refuse such a server."""

import asyncio
import json
import os
import sys
import time
import uuid

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import UPSTREAM_SECRET, http
from harness import CLIENTS, NODE, ROOT, events, use_everything

NATIVE = os.environ.get("MG_RUNTIME", "native") == "native"
UPSTREAM = ROOT / "tests" / "support" / "mcp_upstream.py"
EVERYTHING = CLIENTS / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
ACCEPT = "application/json, text/event-stream"
native_only = pytest.mark.skipif(not NATIVE, reason="local MCP servers run on the native server only")


def client(base_url, key, mode="legacy", path="/mcp"):
    http_client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(base_url + path, http_client=http_client), mode=mode)


def register(gateway, command, **fields):
    name = "loc-" + uuid.uuid4().hex[:6]
    r = gateway.admin("POST", "/mcp/servers", {"name": name, "command": command, **fields})
    return name, r


@pytest.fixture(scope="module")
def local(env):
    """The Python SDK's server over stdio, its TOKEN from a declared
    secret: its name and id."""
    name, r = register(env, [sys.executable, str(UPSTREAM), "stdio-test", "stdio"],
                       env={"TOKEN": "env:E2E_UPSTREAM_KEY"}, timeout_ms=300_000)
    assert r.status_code == 201, r.text
    try:
        yield name, r.json()["id"]
    finally:
        env.admin("DELETE", f"/mcp/servers/{r.json()['id']}")


def run(coro):
    return asyncio.run(coro)


def text(result):
    return result.content[0].text


def test_a_command_is_refused_unless_its_program_is_allowed_here(env):
    # Not among the operator's programs: refused on every runtime.
    _, r = register(env, ["/bin/sh", "-c", "exit 0"])
    assert r.status_code == 400 and r.json()["error"]["param"] == "command", r.text
    assert "MG_MCP_COMMANDS" in r.json()["error"]["message"]
    # A command has an environment, not headers; a URL not both.
    _, r = register(env, [sys.executable, str(UPSTREAM)], headers={"Authorization": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "headers", r.text
    _, r = register(env, [sys.executable], url="http://127.0.0.1:9/mcp")
    assert r.status_code == 400 and r.json()["error"]["param"] == "url", r.text
    _, r = register(env, [sys.executable], env={"MG_ADMIN_API_KEY": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "env", r.text
    # An allowed program: only the native server runs it.
    name, r = register(env, [sys.executable, str(UPSTREAM), "x", "stdio"])
    if NATIVE:
        assert r.status_code == 201, r.text
        view = r.json()
        assert view["command"][0] == sys.executable and view["url"] is None
        env.admin("DELETE", f"/mcp/servers/{view['id']}")
    else:
        assert r.status_code == 400 and r.json()["error"]["param"] == "command", r.text
        assert "native server" in r.json()["error"]["message"]


@native_only
@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_local_server_lists_and_calls_with_progress_in_both_eras(env, key, local, mode):
    name, _ = local

    async def session():
        async with client(env.base_url, key, mode) as c:
            listed = {t.name for t in (await c.list_tools()).tools}
            steps = []

            async def progress(p, total, message):
                steps.append((p, total, message))
            counted = await c.call_tool(f"{name}_count_slowly", {"steps": 3}, progress_callback=progress)
            added = await c.call_tool(f"{name}_add", {"a": 2, "b": 40})
            prompt = await c.get_prompt(f"{name}_summarize", {"text": "stdio"})
            return c.protocol_version, listed, counted, steps, added, prompt

    version, listed, counted, steps, added, prompt = run(session())
    assert version == ("2026-07-28" if mode == "auto" else "2025-11-25")
    assert {f"{name}_echo", f"{name}_count_slowly", f"{name}_environment"} <= listed, listed
    assert text(counted) == "counted 3"
    assert [s[0] for s in steps] == [1, 2, 3] and steps[0][2] == "step 1"
    assert text(added) == "42"
    assert "stdio-test asks: summarize stdio" in prompt.messages[0].content.text


@native_only
def test_its_environment_is_what_its_server_declares_and_nothing_of_the_gateways(env, key, local):
    name, _ = local

    async def session():
        async with client(env.base_url, key) as c:
            return json.loads(text(await c.call_tool(f"{name}_environment", {})))

    seen = run(session())
    assert seen["token"] == UPSTREAM_SECRET
    # PATH and HOME are passed on; Python sets LC_CTYPE itself.
    assert set(seen["names"]) <= {"PATH", "HOME", "TOKEN", "LC_CTYPE"}, seen["names"]


@native_only
def test_sessions_share_one_child_and_never_get_each_others_answers(env, key, local):
    """Two sessions' requests carry the same ids; the child sees ids of
    the gateway's own, and each answer goes back to whoever asked."""
    name, _ = local

    async def one(tag):
        async with client(env.base_url, key) as c:
            calls = [c.call_tool(f"{name}_echo", {"message": f"{tag}-{i}"}) for i in range(8)]
            pid = json.loads(text(await c.call_tool(f"{name}_environment", {})))["pid"]
            return [text(r) for r in await asyncio.gather(*calls)], pid

    async def both():
        return await asyncio.gather(one("a"), one("b"))

    (a, pid_a), (b, pid_b) = run(both())
    assert a == [f"stdio-test: a-{i}" for i in range(8)]
    assert b == [f"stdio-test: b-{i}" for i in range(8)]
    assert pid_a == pid_b


def open_session(env, key):
    headers = {"authorization": f"Bearer {key}", "accept": ACCEPT}
    init = http("POST", env.base_url + "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}},
        headers=headers)
    assert init.status_code == 200, init.text
    headers.update({"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"})
    return headers


def call(env, headers, tool, arguments, id=9):
    body = {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    r = http("POST", env.base_url + "/mcp", body, headers=headers)
    return list(events(r.text.splitlines())) or [r.json()]


def cancellations(env, headers, name, at_least):
    """The child's count of cancelled calls, once it reaches `at_least`
    (or the last seen after a generous wait)."""
    deadline = time.time() + 60
    while True:
        seen = int(call(env, headers, f"{name}_cancellations", {})[-1]["result"]["content"][0]["text"])
        if seen >= at_least or time.time() > deadline:
            return seen
        time.sleep(0.1)


@native_only
def test_a_cancelled_or_abandoned_call_is_cancelled_in_the_child(env, key, local):
    name, _ = local
    headers = open_session(env, key)
    before = cancellations(env, headers, name, 0)
    body = {"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {
        "name": f"{name}_count_slowly", "arguments": {"steps": 1, "hold": True}, "_meta": {"progressToken": 7}}}
    # Cancelled by its client: the call ends, and the tool with it.
    with httpx2.Client(timeout=120) as c, c.stream("POST", env.base_url + "/mcp", json=body, headers=headers) as r:
        messages = events(r.iter_lines())
        first = next(messages)
        assert first["method"] == "notifications/progress" and first["params"]["progressToken"] == 7
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41}}
        assert http("POST", env.base_url + "/mcp", cancel, headers=headers).status_code == 202
        # Cancelled in the child while the call is still open (its own
        # deadline, the server's, is further off than this wait).
        assert cancellations(env, headers, name, before + 1) == before + 1
        rest = list(messages)
    assert "result" not in (rest or [{}])[-1], rest
    # Abandoned: the client goes away mid-call.
    with httpx2.Client(timeout=120) as c, c.stream("POST", env.base_url + "/mcp", json=body, headers=headers) as r:
        assert next(events(r.iter_lines()))["method"] == "notifications/progress"
    assert cancellations(env, headers, name, before + 2) == before + 2
    # Nothing of theirs is left held.
    assert call(env, headers, f"{name}_release", {})[-1]["result"]["content"][0]["text"] == "released"


@native_only
def test_a_child_that_dies_is_started_again_and_a_changed_command_gets_a_new_one(env, key, local):
    name, server_id = local

    async def session(tool, args):
        async with client(env.base_url, key) as c:
            try:
                return await c.call_tool(tool, args)
            except MCPError as e:
                return e

    def pid():
        return json.loads(text(run(session(f"{name}_environment", {}))))["pid"]

    first = pid()
    died = run(session(f"{name}_crash", {}))
    assert isinstance(died, MCPError) and "without an answer" in died.error.message, died
    assert text(run(session(f"{name}_echo", {"message": "again"}))) == "stdio-test: again"
    second = pid()
    assert second != first
    r = env.admin("PATCH", f"/mcp/servers/{server_id}", {"env": {"TOKEN": "changed"}})
    assert r.status_code == 200 and r.json()["env"] == ["TOKEN"], r.text
    try:
        seen = json.loads(text(run(session(f"{name}_environment", {}))))
        assert seen["token"] == "changed" and seen["pid"] != second
    finally:
        env.admin("PATCH", f"/mcp/servers/{server_id}", {"env": {"TOKEN": "env:E2E_UPSTREAM_KEY"}})


@native_only
def test_the_reference_everything_server_over_stdio(env, key):
    if not EVERYTHING.exists():
        pytest.fail("tests/clients is not installed: run `make test` (or npm ci in tests/clients)")
    name, r = register(env, [str(NODE), str(EVERYTHING), "stdio"])
    assert r.status_code == 201, r.text
    try:
        use_everything(env.base_url, key, f"/mcp/{name}")
    finally:
        env.admin("DELETE", f"/mcp/servers/{r.json()['id']}")
