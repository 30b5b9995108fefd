"""`make bench-mcp`: one client's sequential `tools/call`s to the Python
MCP SDK's server (tests/support/mcp_upstream.py, JSON answers), directly
and through the native gateway's `/mcp` in one session (key check, session
opening, allowlist, usage record and metrics on), rounds interleaved;
printed with the added latency."""

import http.client
import json
import os
import pathlib
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


def post(conn, path, body, headers):
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json", **headers})
    resp = conn.getresponse()
    data = resp.read()
    return resp, data


def calls(url, headers, tool):
    """p50/p99/max ms of CALLS sequential calls in one session (after
    WARMUP), on one connection."""
    host, rest = url.removeprefix("http://").split(":", 1)
    port, path = rest.split("/", 1)
    conn = http.client.HTTPConnection(host, int(port))
    path = "/" + path
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
    resp, _ = post(conn, path, init, headers)
    headers = {**headers, "mcp-session-id": resp.getheader("mcp-session-id"), "mcp-protocol-version": "2025-11-25"}
    post(conn, path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
    samples = []
    for i in range(WARMUP + CALLS):
        body = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                "params": {"name": tool, "arguments": {"a": i, "b": 1}}}
        t = time.perf_counter()
        resp, data = post(conn, path, body, headers)
        elapsed = (time.perf_counter() - t) * 1000
        if resp.status != 200 or b'"result"' not in data:
            raise RuntimeError(f"{url}: {resp.status} {data[:200]!r}")
        if i >= WARMUP:
            samples.append(elapsed)
    conn.close()
    s = sorted(samples)
    return {"p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(0.99 * len(s)))], "max": s[-1]}


def mcp_only():
    bins = pathlib.Path(os.environ["MG_BIN_DIR"])
    tmp = tempfile.mkdtemp(prefix="mg-bench-")
    procs = []
    try:
        upstream, url = start([os.environ["MG_UPSTREAM_PYTHON"], str(ROOT / "tests" / "support" / "mcp_upstream.py"),
                               "bench", "json"])
        procs.append(upstream)
        admin_key = "bench-admin-" + uuid.uuid4().hex
        gateway, base = start_native(bins, tmp, admin_key)
        procs.append(gateway)
        admin = {"authorization": f"Bearer {admin_key}"}
        r = call("POST", base + "/admin/api/mcp/servers", {"name": "bench", "url": url}, headers=admin)
        assert r.status_code == 201, r.text
        key = call("POST", base + "/admin/api/keys", {"name": "bench-mcp"}, headers=admin).json()["key"]
        runs = {"direct": [], "gateway": []}
        for _ in range(ROUNDS):
            runs["direct"].append(calls(url, {"accept": ACCEPT}, "add"))
            runs["gateway"].append(calls(base + "/mcp", {"accept": ACCEPT, "authorization": f"Bearer {key}"},
                                         "bench_add"))
        direct, gateway = spread(runs["direct"]), spread(runs["gateway"])
        lines = [f"MCP tools/call, one client, {CALLS} sequential calls a run, {ROUNDS} rounds "
                 "(median, [lowest, highest]), ms:", "", "| target | p50 | p99 | max |", "|---|---|---|---|"]
        for name, r in (("direct", direct), ("gateway", gateway)):
            lines.append(f"| {name} | " + " | ".join(f"{r[k][0]:.2f} [{r[k][1]:.2f}, {r[k][2]:.2f}]"
                                                     for k in ("p50", "p99", "max")) + " |")
        added = " | ".join(f"{gateway[k][0] - direct[k][0]:+.2f}" for k in ("p50", "p99", "max"))
        lines.append(f"| added | {added} |")
        print("\n".join(lines))
    finally:
        for p in reversed(procs):
            stop(p)
