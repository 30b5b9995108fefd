"""The MCP gateway (`/mcp`) on whichever runtime, with the Python `mcp`
SDK's client (handshake era) and two real upstream servers (the SDK's
MCPServer, one answering in SSE, one in JSON): one endpoint, one key, every
server's tools as `{server}_{tool}`, calls routed, progress passed on, the
upstream's credentials from a declared secret and the client's key never
forwarded; sessions sealed, bound to their key, valid on another process."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import UPSTREAM_SECRET, http
from harness import (CLIENTS, NODE, ROOT, free_port, mcp_upstreams, start, start_gateway, stop, use_everything,
                     wait_health)

UPSTREAM = ROOT / "tests" / "support" / "mcp_upstream.py"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "e2e", "version": "1"}}}
ACCEPT = "application/json, text/event-stream"
# The tools of every test upstream (tests/support/mcp_upstream.py), sorted.
TOOLS = ["add", "approve", "consult", "count_slowly", "deploy", "echo", "link", "rug_pull", "seen_headers", "touch"]


@pytest.fixture(scope="module")
def servers(env):
    """Two upstream MCP servers registered with the gateway: their names
    (`sse` answers in event streams and needs a credential, `json` in JSON)."""
    with mcp_upstreams(env, {"sse": [], "json": ["json"]}) as (names, _):
        yield names


def client(base_url, key, path="/mcp"):
    http_client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(base_url + path, http_client=http_client), mode="legacy")


def run(coro):
    return asyncio.run(coro)


def ours(tools, names):
    return sorted(t.name for t in tools if t.name.split("_", 1)[0] in names.values())


def test_one_endpoint_lists_and_calls_every_servers_tools(env, key, servers):
    sse, js = servers["sse"], servers["json"]

    async def session():
        async with client(env.base_url, key) as c:
            listed = (await c.list_tools()).tools
            echo = await c.call_tool(f"{sse}_echo", {"message": "hi"})
            added = await c.call_tool(f"{js}_add", {"a": 2, "b": 40})
            steps = []

            async def progress(p, total, message):
                steps.append((p, total, message))
            counted = await c.call_tool(f"{sse}_count_slowly", {"steps": 3}, progress_callback=progress)
            return listed, echo, added, counted, steps

    listed, echo, added, counted, steps = run(session())
    assert ours(listed, servers) == sorted([f"{sse}_{t}" for t in TOOLS] + [f"{js}_{t}" for t in TOOLS])
    described = next(t for t in listed if t.name == f"{js}_add")
    assert described.description == "Add two integers." and described.input_schema["required"] == ["a", "b"]
    assert echo.content[0].text == f"{sse}: hi" and not echo.is_error
    assert added.structured_content == {"result": 42}
    assert counted.content[0].text == "counted 3"
    assert steps == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]


def test_the_upstream_gets_its_own_credential_and_never_the_clients_key(env, key, servers):
    async def session():
        async with client(env.base_url, key) as c:
            return await c.call_tool(f"{servers['sse']}_seen_headers", {})

    seen = json.loads(run(session()).content[0].text)
    assert seen["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    assert key not in json.dumps(seen)
    assert "mgs1." not in seen.get("mcp-session-id", ""), "the upstream's own session, not the client's"


def test_a_tool_that_is_not_one_of_a_known_server_is_an_error(env, key, servers):
    async def session():
        async with client(env.base_url, key) as c:
            for name in ("nobody_echo", "echo", f"{servers['sse']}_missing"):
                try:
                    r = await c.call_tool(name, {})
                except MCPError as e:
                    yield name, e.error.code
                else:
                    yield name, "error" if r.is_error else "ok"

    async def collect():
        return [x async for x in session()]

    got = dict(run(collect()))
    assert got["nobody_echo"] == -32602 and got["echo"] == -32602
    # The server itself says its tool does not exist.
    assert got[f"{servers['sse']}_missing"] != "ok"


def test_one_server_alone_at_its_own_path_under_its_own_names(env, key, servers):
    js = servers["json"]
    narrow = env.make_key(allowed_tools=[f"{js}_add"])["key"]

    async def session(key):
        async with client(env.base_url, key, f"/mcp/{js}") as c:
            names = sorted(t.name for t in (await c.list_tools()).tools)
            added = await c.call_tool("add", {"a": 1, "b": 2})
            try:
                echoed = (await c.call_tool("echo", {"message": "x"})).content[0].text
            except MCPError as e:
                echoed = e.error.code
            return names, added, echoed

    names, added, echoed = run(session(key))
    assert names == TOOLS
    assert added.structured_content == {"result": 3} and echoed == f"{js}: x"
    # The key's allowlist still names tools as `{server}_{tool}`.
    names, added, echoed = run(session(narrow))
    assert names == ["add"] and added.structured_content == {"result": 3} and echoed == -32602
    r = http("POST", env.base_url + "/mcp/no-such-server", INIT,
             headers={"authorization": f"Bearer {key}", "accept": ACCEPT})
    assert r.status_code == 404 and r.json()["error"]["code"] == -32001 and r.json()["id"] is None


def initialize(base_url, key, path="/mcp"):
    r = http("POST", base_url + path, INIT, headers={"authorization": f"Bearer {key}", "accept": ACCEPT})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["protocolVersion"] == "2025-11-25"
    return r.headers["mcp-session-id"]


def call(base_url, key, session, body):
    headers = {"authorization": f"Bearer {key}", "accept": ACCEPT, "mcp-protocol-version": "2025-11-25"}
    if session:
        headers["mcp-session-id"] = session
    return http("POST", base_url + "/mcp", body, headers=headers)


LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def test_a_session_is_sealed_and_bound_to_the_key_that_opened_it(env, key, servers):
    session = initialize(env.base_url, key)
    assert session.startswith("mgs1.") and servers["sse"] not in session
    assert call(env.base_url, key, session, LIST).status_code == 200
    other = env.make_key()["key"]
    assert call(env.base_url, other, session, LIST).status_code == 404
    assert call(env.base_url, key, None, LIST).status_code == 400
    assert call(env.base_url, key, session[:-3] + "xyz", LIST).status_code == 404
    assert call(env.base_url, key, "a-session-the-gateway-never-gave", LIST).status_code == 404
    # Opened for all servers: not a session of one server's path.
    r = http("POST", env.base_url + f"/mcp/{servers['json']}", LIST,
             headers={"authorization": f"Bearer {key}", "accept": ACCEPT, "mcp-session-id": session})
    assert r.status_code == 404
    ended = http("DELETE", env.base_url + "/mcp", headers={"authorization": f"Bearer {key}",
                                                           "mcp-session-id": session})
    assert ended.status_code == 200
    # A revoked key's sessions end with it.
    revoked = env.make_key()
    s2 = initialize(env.base_url, revoked["key"])
    env.admin("DELETE", f"/keys/{revoked['id']}")
    assert call(env.base_url, revoked["key"], s2, LIST).status_code == 401


def test_what_is_not_one_json_rpc_message_is_refused_in_json_rpc(env, key, servers):
    session = initialize(env.base_url, key)
    batch = call(env.base_url, key, session, [LIST, LIST])
    assert batch.status_code == 400 and batch.json()["error"]["code"] == -32600
    unknown = call(env.base_url, key, session, {"jsonrpc": "2.0", "id": 3, "method": "sampling/createMessage"})
    assert unknown.status_code == 200 and unknown.json()["error"]["code"] == -32601
    assert unknown.json()["id"] == 3
    ping = call(env.base_url, key, session, {"jsonrpc": "2.0", "id": "p", "method": "ping"})
    assert ping.json() == {"jsonrpc": "2.0", "id": "p", "result": {}}
    note = call(env.base_url, key, session, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                             "params": {"requestId": 9}})
    assert note.status_code == 202 and note.text == ""
    headers = {"authorization": f"Bearer {key}", "accept": ACCEPT}
    # A standing stream belongs to a session.
    assert http("GET", env.base_url + "/mcp", headers=headers).status_code == 400
    evil = http("POST", env.base_url + "/mcp", INIT, headers={**headers, "origin": "http://evil.example"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == -32001
    old = http("POST", env.base_url + "/mcp", LIST, headers={**headers, "mcp-protocol-version": "2023-01-01",
                                                              "mcp-session-id": session})
    assert old.status_code == 400
    nokey = http("POST", env.base_url + "/mcp", INIT, headers={"accept": ACCEPT})
    assert nokey.status_code == 401 and nokey.json()["jsonrpc"] == "2.0"
    assert key not in nokey.text


@pytest.mark.skipif(os.environ.get("MG_RUNTIME", "native") != "native", reason="starts a second native process")
def test_a_session_opened_on_one_process_works_on_another(env, key, servers):
    session = initialize(env.base_url, key)
    settings, tmp, bin_dir = env.native
    with open(f"{tmp}/mcp-replica.log", "w") as log:
        proc, url, _ = start_gateway([str(bin_dir / "modelgate")], settings, log)
    try:
        wait_health(url, timeout=120)
        r = call(url, key, session, {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                                     "params": {"name": f"{servers['json']}_add", "arguments": {"a": 1, "b": 2}}})
        assert r.status_code == 200, r.text
        assert r.json()["result"]["structuredContent"] == {"result": 3}
    finally:
        stop(proc)


def test_the_agents_sdk_uses_the_gateways_tools(env, key, servers):
    from agents.mcp import MCPServerStreamableHttp

    async def session():
        server = MCPServerStreamableHttp(
            params={"url": env.base_url + "/mcp", "headers": {"authorization": f"Bearer {key}"}, "timeout": 30},
            name="modelgate", client_session_timeout_seconds=30)
        await server.connect()
        try:
            tools = await server.list_tools()
            result = await server.call_tool(f"{servers['sse']}_echo", {"message": "from an agent"})
            return tools, result
        finally:
            await server.cleanup()

    tools, result = run(session())
    assert f"{servers['json']}_add" in {t.name for t in tools}
    assert result.content[0].text == f"{servers['sse']}: from an agent"


def test_a_key_sees_and_calls_only_the_servers_and_tools_it_is_allowed(env, servers):
    sse, js = servers["sse"], servers["json"]
    created = env.make_key(allowed_tools=[js, f"{sse}_echo"])

    async def session():
        async with client(env.base_url, created["key"]) as c:
            listed = ours((await c.list_tools()).tools, servers)
            echo = await c.call_tool(f"{sse}_echo", {"message": "allowed"})
            try:
                await c.call_tool(f"{sse}_add", {"a": 1, "b": 1})
                refused = None
            except MCPError as e:
                refused = e.error.code
            # Narrowed while the session is open: applies to its next call.
            env.admin("PATCH", f"/keys/{created['id']}", {"allowed_tools": [f"{sse}_echo"]})
            after = ours((await c.list_tools()).tools, servers)
            try:
                await c.call_tool(f"{js}_add", {"a": 1, "b": 1})
                narrowed = None
            except MCPError as e:
                narrowed = e.error.code
            return listed, echo, refused, after, narrowed

    listed, echo, refused, after, narrowed = run(session())
    assert listed == sorted([f"{js}_{t}" for t in TOOLS] + [f"{sse}_echo"])
    assert echo.content[0].text == f"{sse}: allowed"
    assert refused == -32602 and narrowed == -32602
    assert after == [f"{sse}_echo"]
    for bad in (["a.b"], ["x" * 65], ["_tool"], ["ok"] * 257):
        r = env.admin("POST", "/keys", {"name": "e2e-bad-tools", "allowed_tools": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "allowed_tools", (bad, r.text)


def test_every_tool_call_is_one_usage_record_and_counted(env, servers):
    sse, js = servers["sse"], servers["json"]
    created = env.make_key()

    async def session():
        async with client(env.base_url, created["key"]) as c:
            await c.call_tool(f"{js}_add", {"a": 1, "b": 2})
            await c.call_tool(f"{js}_add", {"a": "not a number", "b": 2})
            await c.call_tool(f"{sse}_echo", {"message": "sk-argument-value-e2e"})
            try:
                await c.call_tool(f"{sse}_no_such_tool", {})
            except MCPError:
                pass

    run(session())
    # Each call's record is written before its answer: read once, no wait.
    rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
    got = sorted((r["model"], r["deployment"], r["endpoint"], r["requests"], r["errors"],
                  r["prompt_tokens"] + r["completion_tokens"]) for r in rows)
    # The call with a bad argument is the tool's own error; a tool the
    # server never listed is refused by the gateway, never routed, so
    # neither recorded.
    assert got == sorted([(f"{js}_add", js, "mcp", 2, 1, 0), (f"{sse}_echo", sse, "mcp", 1, 0, 0)]), rows
    assert "sk-argument-value-e2e" not in json.dumps(rows)
    # The records one by one, newest first: how each call ended, how long
    # it took, and its arguments' shape, never their values.
    listed = env.admin("GET", f"/usage/records?key_id={created['id']}&endpoint=mcp")
    assert listed.status_code == 200, listed.text
    records = listed.json()["data"]
    # (Calls a millisecond apart may be listed either way: compared as a set.)
    assert sorted(json.dumps([r["model"], r["deployment"], r["error"], r["arguments"]]) for r in records) == sorted(
        json.dumps(r) for r in [
            [f"{sse}_echo", sse, None, {"message": "string"}],
            [f"{js}_add", js, "tool_error", {"a": "string", "b": "integer"}],
            [f"{js}_add", js, None, {"a": "integer", "b": "integer"}],
        ]), records
    assert [r["created_at"] for r in records] == sorted((r["created_at"] for r in records), reverse=True)
    assert all(r["latency_ms"] >= 0 and r["request_id"] for r in records)
    assert "sk-argument-value-e2e" not in listed.text and "not a number" not in listed.text
    one = env.admin("GET", f"/usage/records?key_id={created['id']}&limit=1").json()
    assert len(one["data"]) == 1 and one["has_more"] is True
    bad = env.admin("GET", "/usage/records?limit=0")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    if os.environ.get("MG_RUNTIME", "native") == "native":  # the runtime that exports Prometheus metrics
        metrics = http("GET", env.base_url + "/metrics", headers={"authorization": f"Bearer {env.admin_key}"})
        text = metrics.text
        assert f'modelgate_mcp_tool_calls_total{{server="{js}",tool="{js}_add",outcome="ok"}}' in text, text[:3000]
        # A failed call is counted without its tool: clients choose names.
        assert f'{{server="{js}",tool="",outcome="tool_error"}}' in text
        assert "no_such_tool" not in text and "sk-argument-value-e2e" not in text




@pytest.fixture(scope="module")
def everything(env):
    """`@modelcontextprotocol/server-everything` (npm, pinned in
    tests/clients: the reference servers' own, handshake era, answering in
    SSE with a priming event and keeping an event store) as a third
    server, on loopback only: its name."""
    entry = CLIENTS / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
    if not entry.exists():
        pytest.fail("tests/clients is not installed: run `make test` (or npm ci in tests/clients)")
    port = free_port()
    # It says it listens on stderr: its port answering is the sign.
    proc = subprocess.Popen([str(NODE), "--require", str(ROOT / "tests" / "support" / "loopback.cjs"),
                             str(entry), "streamableHttp"], env={**os.environ, "PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                stop(proc)
                pytest.fail("server-everything did not start")
            time.sleep(0.1)
    name = "e2e-every-" + uuid.uuid4().hex[:4]
    created = env.admin("POST", "/mcp/servers", {"name": name, "url": f"http://127.0.0.1:{port}/mcp"})
    try:
        assert created.status_code == 201, created.text
        yield name
    finally:
        env.admin("DELETE", f"/mcp/servers/{created.json().get('id')}")
        stop(proc)


def test_the_reference_everything_server_through_the_gateway(env, key, everything):
    names = use_everything(env.base_url, key, f"/mcp/{everything}")
    # At its own path, a server's names are its own.
    assert not any(n.startswith(f"{everything}_") for n in names)


def test_mcp_inspectors_cli_lists_and_calls_through_the_gateway(env, key, servers, everything):
    inspector = CLIENTS / "node_modules" / ".bin" / "mcp-inspector"
    base = [str(inspector), "--cli", env.base_url + "/mcp", "--transport", "http",
            "--header", f"Authorization: Bearer {key}"]
    envv = {**os.environ, "PATH": f"{NODE.parent}:{os.environ['PATH']}"}

    def inspect(*args):
        out = subprocess.run(base + list(args), env=envv, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-2000:])
        return json.loads(out.stdout)

    listed = {t["name"] for t in inspect("--method", "tools/list")["tools"]}
    assert {f"{servers['json']}_add", f"{everything}_get-sum"} <= listed
    called = inspect("--method", "tools/call", "--tool-name", f"{servers['json']}_add",
                     "--tool-arg", "a=20", "--tool-arg", "b=22")
    assert called["structuredContent"] == {"result": 42}
    called = inspect("--method", "tools/call", "--tool-name", f"{everything}_get-sum",
                     "--tool-arg", "a=1", "--tool-arg", "b=2")
    assert "3" in called["content"][0]["text"]


def test_a_server_may_limit_each_keys_calls_a_minute(env, servers):
    js = servers["json"]
    sid = next(s["id"] for s in env.admin("GET", "/mcp/servers").json()["data"] if s["name"] == js)
    assert env.admin("PATCH", f"/mcp/servers/{sid}", {"rpm": 2}).json()["rpm"] == 2
    first, second = env.make_key()["key"], env.make_key()["key"]
    try:
        session = initialize(env.base_url, first)
        add = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
               "params": {"name": f"{js}_add", "arguments": {"a": 1, "b": 1}}}
        answers = [call(env.base_url, first, session, add).json() for _ in range(3)]
        assert [("result" in a) for a in answers] == [True, True, False]
        refused = answers[2]["error"]
        assert refused["code"] == -32001 and "2 tool calls a minute" in refused["message"]
        assert refused["data"]["retry_after_ms"] > 0 and answers[2]["id"] == 9
        # Each key has its own allowance.
        other = initialize(env.base_url, second)
        assert "result" in call(env.base_url, second, other, add).json()
    finally:
        env.admin("PATCH", f"/mcp/servers/{sid}", {"rpm": None})


def test_a_changed_or_new_tool_definition_is_held_back_until_an_admin_accepts_it(env, key):
    """The rug pull: a server changes a tool's description after it was
    first listed (pinned), and adds a tool. Neither reaches clients (nor is
    the new one callable) until an admin accepts the definitions."""
    name = "e2e-pin-" + uuid.uuid4().hex[:4]
    proc, url = start([sys.executable, str(UPSTREAM), name])
    sid = env.admin("POST", "/mcp/servers", {"name": name, "url": url}).json()["id"]
    try:
        session = initialize(env.base_url, key)

        def listed():
            tools = call(env.base_url, key, session, LIST).json()["result"]["tools"]
            return {t["name"]: t["description"] for t in tools if t["name"].startswith(name + "_")}

        def invoke(tool, args):
            body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": f"{name}_{tool}",
                                                                               "arguments": args}}
            return call(env.base_url, key, session, body).json()

        first = listed()
        assert f"{name}_echo" in first and f"{name}_rug_pull" in first
        pinned = env.admin("GET", f"/mcp/servers/{sid}").json()["pinned_tools"]
        assert "echo" in pinned and "exfiltrate" not in pinned
        assert invoke("rug_pull", {})["result"]["content"][0]["text"] == "changed"
        after = listed()
        assert f"{name}_echo" not in after and f"{name}_exfiltrate" not in after
        assert f"{name}_add" in after, "unchanged tools stay"
        assert invoke("exfiltrate", {"data": "x"})["error"]["code"] == -32602
        review = {t["name"]: t["standing"] for t in env.admin("GET", f"/mcp/servers/{sid}/tools").json()["data"]}
        assert (review["echo"], review["exfiltrate"], review["add"]) == ("changed", "new", "pinned")
        accepted = env.admin("POST", f"/mcp/servers/{sid}/tools/accept")
        assert accepted.status_code == 200 and "exfiltrate" in accepted.json()["accepted"]
        now = listed()
        assert "~/.ssh" in now[f"{name}_echo"] and f"{name}_exfiltrate" in now
    finally:
        env.admin("DELETE", f"/mcp/servers/{sid}")
        stop(proc)
