"""The MCP gateway in the stateless era (2026-07-28), both ways: the
Python `mcp` SDK's client in `auto` mode discovers the gateway as a modern
server and uses it without a session; the gateway speaks to each upstream
in its own era (the SDK's dual-era MCPServer statelessly, a handshake-only
server through a session of its own); a modern request's routing headers
are held to its body; prompts and resources pass through in both eras."""

import asyncio
import json
import os
import socket
import time
import urllib.parse
from http import client as http_client

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import UPSTREAM_SECRET, http
from harness import events, mcp_upstreams

MODERN = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {}}
ACCEPT = "application/json, text/event-stream"
URLS = {}


@pytest.fixture(scope="module")
def servers(env):
    """Four upstreams: `sse` and `json` speak both eras (`sse` needs a
    credential), `legacy` only the handshake era, `modern` only the
    stateless one."""
    kinds = {"sse": [], "json": ["json"], "legacy": ["legacy"], "modern": ["modern"]}
    with mcp_upstreams(env, kinds, "e2m") as (names, urls):
        URLS.update(urls)
        yield names


def client(base_url, key, mode="auto"):
    http_client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(base_url + "/mcp", http_client=http_client), mode=mode)


def run(coro):
    return asyncio.run(coro)


def test_a_modern_client_uses_every_servers_tools_without_a_session(env, key, servers):
    sse, js, legacy, modern = servers["sse"], servers["json"], servers["legacy"], servers["modern"]

    async def session():
        async with client(env.base_url, key) as c:
            listed = sorted(t.name for t in (await c.list_tools()).tools)
            echoes = [await c.call_tool(f"{s}_echo", {"message": "hi"}) for s in (sse, js, legacy, modern)]
            steps = []

            async def progress(p, total, message):
                steps.append((p, total, message))
            counted = await c.call_tool(f"{sse}_count_slowly", {"steps": 2}, progress_callback=progress)
            try:
                await c.call_tool("nobody_echo", {})
                unknown = None
            except MCPError as e:
                unknown = e.error.code
            return c.protocol_version, listed, echoes, counted, steps, unknown

    version, listed, echoes, counted, steps, unknown = run(session())
    assert version == MODERN
    for s in (sse, js, legacy, modern):
        assert f"{s}_echo" in listed and f"{s}_add" in listed, listed
    assert [e.content[0].text for e in echoes] == [f"{sse}: hi", f"{js}: hi", f"{legacy}: hi", f"{modern}: hi"]
    assert counted.content[0].text == "counted 2"
    assert steps == [(1.0, 2.0, "step 1"), (2.0, 2.0, "step 2")]
    assert unknown == -32602


def seen(env, key, server, mode):
    async def session():
        async with client(env.base_url, key, mode) as c:
            return json.loads((await c.call_tool(f"{server}_seen_headers", {})).content[0].text)
    return run(session())


def stateless(seen):
    return seen["mcp-protocol-version"] == MODERN and "mcp-session-id" not in seen


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_the_gateway_speaks_each_clients_era_where_the_server_has_it(env, key, servers, mode):
    both = seen(env, key, servers["sse"], mode)
    assert stateless(both) == (mode == "auto"), both
    assert both["authorization"] == f"Bearer {UPSTREAM_SECRET}" and key not in json.dumps(both)
    modern = seen(env, key, servers["modern"], mode)
    assert stateless(modern)
    assert modern["mcp-method"] == "tools/call" and modern["mcp-name"] == "seen_headers"
    # The gateway is the client there, and offers nothing it cannot relay.
    meta = modern["(meta)"]
    assert meta["io.modelcontextprotocol/clientInfo"]["name"] == "modelgate"
    assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
    old = seen(env, key, servers["legacy"], mode)
    assert old["mcp-protocol-version"] == "2025-11-25" and old["mcp-session-id"]
    assert "mcp-method" not in old
    assert not any(k.startswith("io.modelcontextprotocol/") for k in old["(meta)"])


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_an_argument_a_stateless_server_wants_in_a_header_gets_there(env, key, servers, mode):
    """A tool whose schema mirrors an argument in an `Mcp-Param-*` header
    (`x-mcp-header`), on a server of the stateless era alone, which refuses
    a call without it: a stateless client sends it itself (the gateway
    lists the schema as it is, and passes the header on); for a
    handshake-era client, which has no way to, the gateway derives it from
    the tool's schema and the arguments."""
    modern = servers["modern"]

    async def session():
        async with client(env.base_url, key, mode) as c:
            return (await c.call_tool(f"{modern}_deploy", {"region": "eu-west"})).content[0].text

    assert run(session()) == "eu-west (header eu-west)"


def post(env, key, body, **headers):
    h = {"authorization": f"Bearer {key}", "accept": ACCEPT, "mcp-protocol-version": MODERN}
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    return http("POST", env.base_url + "/mcp", body, headers=h)


def tool_call(name, meta=ENVELOPE, **args):
    return {"jsonrpc": "2.0", "id": "c-1", "method": "tools/call",
            "params": {"name": name, "arguments": args, "_meta": meta}}


def test_a_modern_requests_headers_must_say_what_its_body_says(env, key, servers):
    name = f"{servers['json']}_add"
    ok = post(env, key, tool_call(name, a=1, b=2), mcp_method="tools/call", mcp_name=name)
    assert ok.status_code == 200 and ok.json()["id"] == "c-1", ok.text
    assert ok.json()["result"]["structuredContent"] == {"result": 3}
    assert ok.json()["result"]["resultType"] == "complete"

    def refused(r, status, code):
        assert r.status_code == status and r.json()["error"]["code"] == code, r.text
        return r.json()["error"]

    other = f"{servers['sse']}_add"
    refused(post(env, key, tool_call(name, a=1, b=2), mcp_method="tools/call", mcp_name=other), 400, -32020)
    refused(post(env, key, tool_call(name, a=1, b=2), mcp_method="tools/list", mcp_name=name), 400, -32020)
    refused(post(env, key, tool_call(name, a=1, b=2), mcp_method="tools/call"), 400, -32020)
    refused(post(env, key, tool_call(name, meta={}, a=1, b=2), mcp_method="tools/call", mcp_name=name), 400, -32602)
    future = post(env, key, tool_call(name, a=1), mcp_method="tools/call", mcp_name=name,
                  mcp_protocol_version="2099-01-01")
    data = refused(future, 400, -32022)["data"]
    assert MODERN in data["supported"] and "2025-11-25" in data["supported"] and data["requested"] == "2099-01-01"
    # A method this gateway does not serve, a tool the key may not use.
    unknown = {"jsonrpc": "2.0", "id": 5, "method": "resources/subscribe", "params": {"_meta": ENVELOPE}}
    refused(post(env, key, unknown, mcp_method="resources/subscribe"), 404, -32601)
    narrow = env.make_key(allowed_tools=[servers["sse"]])["key"]
    refused(post(env, narrow, tool_call(name, a=1, b=2), mcp_method="tools/call", mcp_name=name), 400, -32602)
    # Notifications are taken; nothing else of the handshake era applies.
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    assert post(env, key, note, mcp_method="notifications/cancelled").status_code == 202
    assert http("DELETE", env.base_url + "/mcp", None, headers={
        "authorization": f"Bearer {key}", "mcp-protocol-version": MODERN}).status_code == 405


def test_discover_names_both_eras_and_a_list_is_never_cached(env, key, servers):
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": ENVELOPE}}
    r = post(env, key, discover, mcp_method="server/discover")
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert MODERN in result["supportedVersions"] and "2025-06-18" in result["supportedVersions"]
    assert result["capabilities"]["tools"] is not None and result["resultType"] == "complete"
    listed = post(env, key, {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": ENVELOPE}},
                  mcp_method="tools/list").json()["result"]
    assert listed["ttlMs"] == 0 and listed["cacheScope"] == "private"
    assert f"{servers['legacy']}_echo" in [t["name"] for t in listed["tools"]]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_prompts_and_resources_of_every_server_in_either_era(env, key, servers, mode):
    sse, legacy = servers["sse"], servers["legacy"]

    async def session():
        async with client(env.base_url, key, mode) as c:
            prompts = sorted(p.name for p in (await c.list_prompts()).prompts)
            resources = sorted(str(r.uri) for r in (await c.list_resources()).resources)
            templates = sorted(t.uri_template for t in (await c.list_resource_templates()).resource_templates)
            prompt = await c.get_prompt(f"{legacy}_summarize", {"text": "the news"})
            read = await c.read_resource(f"{sse}+config://settings")
            templated = await c.read_resource(f"{legacy}+greeting://ada")
            try:
                await c.read_resource("nobody+config://settings")
                unknown = None
            except MCPError as e:
                unknown = e.error.code
            return prompts, resources, templates, prompt, read, templated, unknown

    prompts, resources, templates, prompt, read, templated, unknown = run(session())
    for s in servers.values():
        assert f"{s}_summarize" in prompts and f"{s}+config://settings" in resources, (prompts, resources)
        assert f"{s}+greeting://{{who}}" in templates, templates
    assert prompt.messages[0].content.text == f"{legacy} asks: summarize the news"
    assert read.contents[0].text == f"{sse} settings" and str(read.contents[0].uri) == f"{sse}+config://settings"
    assert templated.contents[0].text == f"hello ada from {legacy}"
    assert unknown == -32602


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_linked_resource_is_named_as_clients_read_it(env, key, servers, mode):
    """A tool's result that links a resource names it as `/mcp` does
    (`{server}+{uri}`), whether the answer was streamed (`sse`) or whole
    (`json`), so the client reads it back through the gateway; at
    `/mcp/{server}` the server's own URI is kept."""
    sse, js = servers["sse"], servers["json"]

    async def session(path, tools):
        http_client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60)
        async with Client(streamable_http_client(env.base_url + path, http_client=http_client), mode=mode) as c:
            links = [(await c.call_tool(t, {})).content[0] for t in tools]
            return links, await c.read_resource(str(links[0].uri))

    links, read = run(session("/mcp", [f"{sse}_link", f"{js}_link"]))
    assert [(link.type, str(link.uri)) for link in links] == [
        ("resource_link", f"{sse}+config://settings"), ("resource_link", f"{js}+config://settings")]
    assert read.contents[0].text == f"{sse} settings"
    links, read = run(session(f"/mcp/{js}", ["link"]))
    assert str(links[0].uri) == "config://settings" and read.contents[0].text == f"{js} settings"


def test_a_servers_requests_reach_a_session_client_and_its_answers_come_back(env, key, servers):
    """During a call a server asks its client's model (sampling), its user
    (elicitation) and its roots: a handshake-era client that offered
    those is asked on the call's stream, and its answers go back to the
    server, which then finishes the call; a stateless client is asked
    nothing (the server's requests are refused)."""
    from mcp.types import CreateMessageResult, ElicitResult, ListRootsResult, Root, TextContent
    asked = []

    async def sampling(context, params):
        asked.append(("sampling", params.messages[0].content.text))
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="forty-two"),
                                   model="e2e-model")

    async def elicitation(context, params):
        asked.append(("elicitation", params.message))
        return ElicitResult(action="accept", content={"ok": True})

    async def roots(context):
        asked.append(("roots", None))
        return ListRootsResult(roots=[Root(uri="file:///work/project", name="project")])

    async def session(mode, server):
        http_client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60)
        async with Client(streamable_http_client(env.base_url + "/mcp", http_client=http_client), mode=mode,
                          sampling_callback=sampling, elicitation_callback=elicitation,
                          list_roots_callback=roots) as c:
            try:
                return (await c.call_tool(f"{server}_consult", {"question": "the answer?"})).content[0].text
            except MCPError as e:
                return e.error.code

    answered = run(session("legacy", servers["sse"]))
    assert answered == "model: forty-two; user: accept {'ok': True}; roots: ['file:///work/project']", answered
    assert asked == [("sampling", "the answer?"), ("elicitation", "Go ahead?"), ("roots", None)]
    asked.clear()
    refused = run(session("auto", servers["sse"]))
    # (The server finds no way to ask in the stateless era: its error.)
    assert asked == [] and isinstance(refused, int), refused


def test_a_stateless_client_gives_the_input_a_server_asks_for(env, key, servers):
    """A server that needs its user's word mid-call answers a stateless
    client with a result that asks for it (`input_required`, with its
    `requestState`), and the client calls again with the answer: through
    the gateway the client's capabilities reach the server, the retry
    reaches the same server, and each round is a record of its own. A
    session client is asked on the call's stream instead."""
    from mcp.types import ElicitResult
    asked = []
    made = env.make_key()
    key = made["key"]

    async def elicitation(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"ok": True})

    async def session(mode, server):
        http_client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60)
        async with Client(streamable_http_client(env.base_url + "/mcp", http_client=http_client), mode=mode,
                          elicitation_callback=elicitation) as c:
            return (await c.call_tool(f"{server}_approve", {"action": "deploy"})).content[0].text

    modern = servers["modern"]
    assert run(session("auto", modern)) == "deploy: approved"
    assert run(session("auto", servers["sse"])) == "deploy: approved"
    assert run(session("legacy", servers["sse"])) == "deploy: approved"
    assert asked == ["Allow deploy?"] * 3
    records = env.admin("GET", f"/usage/records?endpoint=mcp&key_id={made['id']}&model={modern}_approve")
    assert [r["error"] for r in records.json()["data"]] == [None, None], records.text
    if os.environ.get("MG_RUNTIME", "native") == "native":  # the runtime that exports Prometheus metrics
        metrics = http("GET", env.base_url + "/metrics", headers={"authorization": f"Bearer {env.admin_key}"})
        assert f'{{server="{modern}",tool="{modern}_approve",outcome="input_required"}}' in metrics.text


def test_the_state_a_client_holds_is_sealed_for_its_key_and_call(env, key, servers):
    """The `requestState` a server gives a stateless client reaches it
    sealed by the gateway (servers see one client, the gateway, for
    every key): the same key's retry of the same call gets the server's
    own state back; another key, another tool or a changed state is
    refused with -32602 before anything reaches the server."""
    modern = servers["modern"]
    approve = f"{modern}_approve"

    def call(who, name, state=None, answers=None):
        body = tool_call(name, action="ship")
        if state is not None:
            body["params"].update(requestState=state, inputResponses=answers)
        body["params"]["_meta"] = dict(ENVELOPE, **{
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}})
        return post(env, who, body, mcp_method="tools/call", mcp_name=name)

    first = call(key, approve)
    assert first.status_code == 200, first.text
    result = first.json()["result"]
    assert result["resultType"] == "input_required", result
    state = result["requestState"]
    assert state.startswith("mgr1."), state
    (asked,) = result["inputRequests"]
    answers = {asked: {"action": "accept", "content": {"ok": True}}}
    other = env.make_key()["key"]
    flipped = state[:-6] + ("A" if state[-6] != "A" else "B") + state[-5:]
    for who, name, sent in [(other, approve, state), (key, f"{modern}_echo", state), (key, approve, flipped)]:
        r = call(who, name, sent, answers)
        assert r.status_code == 400 and r.json()["error"]["code"] == -32602, r.text
        assert "requestState" in r.json()["error"]["message"]
    done = call(key, approve, state, answers)
    assert done.json()["result"]["content"][0]["text"] == "ship: approved", done.text


def test_a_session_client_hears_of_its_subscribed_resources_on_its_standing_stream(env, key, servers):
    """`resources/subscribe` goes to the resource's server in the client's
    session; the server's notice that it changed comes on the server's
    standing stream, which the gateway relays on the client's (`GET
    /mcp`) under the client's name for the resource."""
    sse = servers["sse"]
    heard = asyncio.Queue()

    async def handler(message):
        if getattr(message, "method", None) == "notifications/resources/updated":
            await heard.put(str(message.params.uri))

    async def session():
        http_client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60)
        async with Client(streamable_http_client(env.base_url + "/mcp", http_client=http_client), mode="legacy",
                          message_handler=handler) as c:
            await c.subscribe_resource(f"{sse}+config://settings")
            # The client opens its standing stream on its own time: the
            # change is told again until one is heard.
            for _ in range(120):
                await c.call_tool(f"{sse}_touch", {"uri": "config://settings"})
                try:
                    uri = await asyncio.wait_for(heard.get(), timeout=1)
                    break
                except asyncio.TimeoutError:
                    uri = None
            await c.unsubscribe_resource(f"{sse}+config://settings")
            return uri

    assert run(session()) == f"{sse}+config://settings"


def test_a_stateless_client_hears_what_it_subscribed_to(env, key, servers):
    """`subscriptions/listen` through the gateway: each server is asked in
    its era for what the client asked to hear of it (a stateless-era
    server by its own `subscriptions/listen`; a handshake-only one through
    a session of the subscription's own, with its standing stream and
    `resources/subscribe`), and its changes reach the client as changes
    of the client's subscription, under the client's names."""
    modern, legacy = servers["modern"], servers["legacy"]
    wanted = {f"{modern}+config://settings", f"{legacy}+config://settings"}

    async def session():
        async with client(env.base_url, key) as c:
            async with c.listen(resource_subscriptions=sorted(wanted | {"nobody+config://x"})) as sub:
                honored = set(sub.honored.resource_subscriptions or [])
                heard = set()

                async def hear():
                    async for event in sub:
                        heard.add(event.uri)
                        if heard >= wanted:
                            return
                listening = asyncio.create_task(hear())
                # A server's change is told again until it is heard (a
                # session's standing stream is its server's to start).
                for _ in range(60):
                    for s in sorted({modern, legacy} - {u.split("+")[0] for u in heard}):
                        await c.call_tool(f"{s}_touch", {"uri": "config://settings"})
                    done, _ = await asyncio.wait({listening}, timeout=1)
                    if done:
                        break
                listening.cancel()
                return honored, heard

    honored, heard = run(session())
    assert honored == wanted
    assert heard == wanted


def test_prompts_and_resources_need_the_whole_server(env, servers):
    sse, js = servers["sse"], servers["json"]
    narrow = env.make_key(allowed_tools=[js, f"{sse}_echo"])["key"]

    async def session():
        async with client(env.base_url, narrow) as c:
            prompts = [p.name for p in (await c.list_prompts()).prompts]
            try:
                await c.get_prompt(f"{sse}_summarize", {"text": "x"})
                refused = None
            except MCPError as e:
                refused = e.error.code
            return prompts, refused

    prompts, refused = run(session())
    assert f"{js}_summarize" in prompts and f"{sse}_summarize" not in prompts
    assert refused == -32602


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_progress_reaches_the_client_while_the_tool_still_runs(env, servers, era):
    """The server holds its answer until the test releases it, after the
    client has seen its progress: only a relay that passes events on as
    they come lets the test get that far."""
    created = env.make_key()
    tool = f"{servers['sse']}_count_slowly"
    headers = {"authorization": f"Bearer {created['key']}", "accept": ACCEPT}
    params = {"name": tool, "arguments": {"steps": 2, "hold": True}, "_meta": {"progressToken": "p-1"}}
    if era == "modern":
        headers.update({"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool})
        params["_meta"].update(ENVELOPE)
    else:
        init = http("POST", env.base_url + "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}},
            headers=headers)
        headers.update({"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"})
    body = {"jsonrpc": "2.0", "id": "call-9", "method": "tools/call", "params": params}
    with httpx2.Client(timeout=120) as c, c.stream("POST", env.base_url + "/mcp", json=body, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        messages = events(r.iter_lines())
        first = next(messages)
        assert first["method"] == "notifications/progress" and first["params"]["progressToken"] == "p-1"
        released = http("POST", URLS["sse"].removesuffix("/mcp") + "/release", None)
        assert released.status_code == 200
        rest = list(messages)
    assert rest[-1]["id"] == "call-9" and rest[-1]["result"]["content"][0]["text"] == "counted 2"
    assert [m["params"]["progress"] for m in [first, *rest[:-1]]] == [1, 2]
    rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
    assert [(r["model"], r["requests"], r["errors"]) for r in rows] == [(tool, 1, 0)], rows


def test_a_client_gone_mid_stream_still_leaves_the_calls_record(env, servers):
    created = env.make_key()
    tool = f"{servers['sse']}_count_slowly"
    headers = {"authorization": f"Bearer {created['key']}", "accept": ACCEPT, "mcp-protocol-version": MODERN,
               "mcp-method": "tools/call", "mcp-name": tool, "content-type": "application/json"}
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": tool, "arguments": {"steps": 1, "hold": True}, "_meta": {"progressToken": 1, **ENVELOPE}}}
    url = urllib.parse.urlsplit(env.base_url)
    conn = http_client.HTTPConnection(url.hostname, url.port)
    conn.request("POST", url.path + "/mcp", body=json.dumps(body), headers=headers)
    resp = conn.getresponse()
    got = b""
    while b"notifications/progress" not in got:
        got += resp.read1(4096)
    # The client goes away (shutdown: the response object holds the socket
    # too); the server answers after. However the runtime notices, the call
    # is recorded once.
    conn.sock.shutdown(socket.SHUT_RDWR)
    resp.close()
    conn.close()
    http("POST", URLS["sse"].removesuffix("/mcp") + "/release", None)
    deadline = time.time() + 90
    rows = []
    while time.time() < deadline and not rows:
        rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
        time.sleep(0.2)
    time.sleep(0.5)
    rows = env.admin("GET", f"/usage?key_id={created['id']}").json()["data"]
    assert [(r["model"], r["requests"]) for r in rows] == [(tool, 1)], rows


def test_a_sessions_cancellation_reaches_the_server(env, servers):
    """A handshake-era client cancels its call with
    `notifications/cancelled` (its own id): the server stops the tool, so
    the call ends with an error instead of waiting to be released."""
    created = env.make_key()
    tool = f"{servers['sse']}_count_slowly"
    headers = {"authorization": f"Bearer {created['key']}", "accept": ACCEPT}
    init = http("POST", env.base_url + "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}},
        headers=headers)
    headers.update({"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"})
    body = {"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {
        "name": tool, "arguments": {"steps": 1, "hold": True}, "_meta": {"progressToken": 1}}}
    with httpx2.Client(timeout=120) as c, c.stream("POST", env.base_url + "/mcp", json=body, headers=headers) as r:
        messages = events(r.iter_lines())
        assert next(messages)["method"] == "notifications/progress"
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41}}
        assert http("POST", env.base_url + "/mcp", cancel, headers=headers).status_code == 202
        rest = list(messages)
    assert rest and "result" not in rest[-1], rest
    # The server says so itself (the Python SDK: -32800, "Request cancelled").
    assert rest[-1]["id"] == 41 and "cancel" in rest[-1]["error"]["message"].lower(), rest
