"""MCP tool calls, one client: sequential `tools/call`s to the Python MCP
SDK's server (tests/support/mcp_upstream.py), directly and through the
native gateway's `/mcp` (key check, allowlist, usage record and metrics
on), rounds interleaved: over HTTP in a session (JSON answers), over HTTP
without one (the stateless 2026-07-28 era), and to a local server over
stdio (the gateway runs the child; directly, this script does). Part of
`make bench`; `make bench-mcp` prints it alone."""

import http.client
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from harness import ROOT, http as call, start, stop  # noqa: E402
from bench_load import spread, start_native  # noqa: E402

CALLS = int(os.environ.get("MG_BENCH_MCP_CALLS", "300"))
WARMUP = 20
ROUNDS = 3
ACCEPT = "application/json, text/event-stream"
UPSTREAM = ROOT / "tests" / "support" / "mcp_upstream.py"
MODERN = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}


def add(i, tool, meta=None):
    params = {"name": tool, "arguments": {"a": i, "b": 1}}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": params}


def summary(samples):
    s = sorted(samples)
    return {"p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(0.99 * len(s)))], "max": s[-1]}


def timed(send):
    """p50/p99/max ms of CALLS calls of `send(i)` after WARMUP."""
    samples = []
    for i in range(WARMUP + CALLS):
        t = time.perf_counter()
        send(i)
        if i >= WARMUP:
            samples.append((time.perf_counter() - t) * 1000)
    return summary(samples)


def http_calls(url, headers, tool, modern=False):
    """Sequential calls on one connection: in one session, or (`modern`)
    each on its own, as a stateless-era client makes them."""
    host, rest = url.removeprefix("http://").split(":", 1)
    port, path = rest.split("/", 1)
    conn = http.client.HTTPConnection(host, int(port))
    path = "/" + path

    def post(body, hdrs):
        conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json", **hdrs})
        resp = conn.getresponse()
        return resp, resp.read()

    if modern:
        headers = {**headers, "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool}
    else:
        resp, _ = post(INIT, headers)
        headers = {**headers, "mcp-session-id": resp.getheader("mcp-session-id"),
                   "mcp-protocol-version": "2025-11-25"}
        post({"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)

    def send(i):
        resp, data = post(add(i, tool, ENVELOPE if modern else None), headers)
        if resp.status != 200 or b'"result"' not in data:
            raise RuntimeError(f"{url}: {resp.status} {data[:200]!r}")
    try:
        return timed(send)
    finally:
        conn.close()


def stdio_calls(python):
    """Sequential calls to a child this script runs and speaks to over
    stdio itself, as the gateway does."""
    child = subprocess.Popen([python, str(UPSTREAM), "bench-stdio", "stdio"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def rpc(message):
        child.stdin.write((json.dumps(message) + "\n").encode())
        child.stdin.flush()
        if "id" not in message:
            return None
        while True:
            answer = json.loads(child.stdout.readline())
            if answer.get("id") == message["id"] and "method" not in answer:
                return answer
    try:
        rpc(INIT)
        rpc({"jsonrpc": "2.0", "method": "notifications/initialized"})

        def send(i):
            if "result" not in rpc(add(i, "add")):
                raise RuntimeError("stdio: no result")
        return timed(send)
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def mcp_section(bins, tmp, procs, python):
    """The section's lines: each path directly and through the gateway."""
    upstream, url = start([python, str(UPSTREAM), "bench", "json"])
    procs.append(upstream)
    admin_key = "bench-admin-" + uuid.uuid4().hex
    gateway, base = start_native(bins, tmp, admin_key, MG_MCP_COMMANDS=python)
    procs.append(gateway)
    admin = {"authorization": f"Bearer {admin_key}"}
    for server in ({"name": "bench", "url": url},
                   {"name": "local", "command": [python, str(UPSTREAM), "local", "stdio"]}):
        r = call("POST", base + "/admin/api/mcp/servers", server, headers=admin)
        assert r.status_code == 201, r.text
    key = call("POST", base + "/admin/api/keys", {"name": "bench-mcp"}, headers=admin).json()["key"]
    client = {"accept": ACCEPT, "authorization": f"Bearer {key}"}
    paths = {
        "HTTP, session": (lambda: http_calls(url, {"accept": ACCEPT}, "add"),
                          lambda: http_calls(base + "/mcp", client, "bench_add")),
        "HTTP, stateless (2026-07-28)": (lambda: http_calls(url, {"accept": ACCEPT}, "add", modern=True),
                                         lambda: http_calls(base + "/mcp", client, "bench_add", modern=True)),
        "stdio (local server), session": (lambda: stdio_calls(python),
                                          lambda: http_calls(base + "/mcp", client, "local_add")),
    }
    runs = {(p, side): [] for p in paths for side in (0, 1)}
    for _ in range(ROUNDS):
        for p, sides in paths.items():
            for side, run in enumerate(sides):
                runs[(p, side)].append(run())
    lines = [f"One client, {CALLS} sequential `tools/call`s a run after {WARMUP} warm-up, {ROUNDS} rounds interleaved,"
             " to the Python MCP SDK's MCPServer (`tests/support/mcp_upstream.py`; over HTTP with JSON answers)"
             " directly and through `/mcp` (key check, allowlist, usage record and metrics on). Directly over"
             " stdio, this script speaks to the child as the gateway does. Median of the rounds,"
             " [lowest, highest], ms:", "",
             "| path | target | p50 | p99 | max |", "|---|---|---|---|---|"]
    for p in paths:
        direct, gateway = spread(runs[(p, 0)]), spread(runs[(p, 1)])
        for name, r in (("direct", direct), ("through `/mcp`", gateway)):
            lines.append(f"| {p} | {name} | " + " | ".join(f"{r[k][0]:.2f} [{r[k][1]:.2f}, {r[k][2]:.2f}]"
                                                           for k in ("p50", "p99", "max")) + " |")
        added = " | ".join(f"{gateway[k][0] - direct[k][0]:+.2f}" for k in ("p50", "p99", "max"))
        lines.append(f"| {p} | added | {added} |")
    lines += ["", "Over HTTP the Python server's own floor (each of its answers waits on a delayed acknowledgement)"
              " hides most of what the gateway adds; the stdio rows (no network, a server that answers in about"
              " a millisecond) show it. A stateless client's calls go straight to the server in the era it said"
              " it speaks, which the gateway keeps a minute: once a minute a call asks again (`server/discover`),"
              " a round trip more."]
    return lines


def mcp_only():
    """`make bench-mcp`: the section alone, printed."""
    tmp = tempfile.mkdtemp(prefix="mg-bench-")
    procs = []
    try:
        lines = mcp_section(pathlib.Path(os.environ["MG_BIN_DIR"]), tmp, procs, os.environ["MG_UPSTREAM_PYTHON"])
        print("\n".join(lines))
    finally:
        for p in reversed(procs):
            stop(p)
