"""OpenTelemetry traces from the native server and the Lambda: a second
gateway process, configured with the standard OTEL_* variables, exports
over OTLP/HTTP (JSON here; the default protobuf is tested from Rust) to a
receiver in this test. A request that came with a W3C `traceparent` is one
span in the client's trace, its upstream attempt a child span whose
context the upstream received. The Worker exports no traces."""

import json
import os
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import http as call
from harness import free_port, start_gateway, start_lambda, stop, wait_health

RUNTIME = os.environ.get("MG_RUNTIME", "native")
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"

pytestmark = pytest.mark.skipif(RUNTIME == "worker", reason="the Worker exports no traces")


class Receiver:
    """An OTLP/HTTP JSON trace receiver on a free loopback port."""

    def __init__(self):
        self.spans = []
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                for resource in body.get("resourceSpans", []):
                    for scope in resource.get("scopeSpans", []):
                        spans.extend(scope.get("spans", []))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find(self, name):
        return next((s for s in self.spans if s["name"] == name), None)


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = int(v["intValue"]) if "intValue" in v else next(iter(v.values()))
    return out


@pytest.fixture(scope="module")
def traced(env, tmp_path_factory):
    """A gateway process exporting traces to a receiver: (base URL, receiver)."""
    receiver = Receiver()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "mg-e2e"}
    if RUNTIME == "lambda":
        port = free_port()
        settings, tmp = env.lambda_settings
        log = open(f"{tmp}/lambda-traced.log", "w")
        proc = start_lambda(port, {**settings, **otel}, tmp, log)
        base = f"http://127.0.0.1:{port}/lambda-url/modelgate-lambda"
    else:
        tmp = tmp_path_factory.mktemp("traced")
        bin_dir = os.environ.get("MG_BIN_DIR", "target/debug")
        proc, base, _ = start_gateway([f"{bin_dir}/modelgate"], {**os.environ, **otel, "MG_DB_PATH": f"{tmp}/db.sqlite",
                                                                 "MG_ADMIN_API_KEY": env.admin_key},
                                      subprocess.DEVNULL)
    try:
        wait_health(base, timeout=300)
        yield base, receiver
    finally:
        stop(proc)
        receiver.server.shutdown()


def test_a_request_is_a_span_in_the_clients_trace_and_its_attempt_a_child(env, traced):
    base, receiver = traced
    admin = {"authorization": f"Bearer {env.admin_key}"}
    name = f"traced-{uuid.uuid4().hex[:8]}"
    r = call("POST", base + "/admin/api/models", {"name": name, "backend": "vllm", "base_url": env.mock_url,
                                                  "upstream_model": "mock?tokens=3"}, headers=admin)
    assert r.status_code == 201, r.text
    key = call("POST", base + "/admin/api/keys", {"name": "traced"}, headers=admin).json()["key"]
    r = call("POST", base + "/v1/chat/completions", {"model": name, "messages": [{"role": "user", "content": "hi"}]},
             headers={"authorization": f"Bearer {key}", "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert r.status_code == 200, r.text
    sent = call("GET", env.mock_url + "/_mock/last").json()["traceparent"]
    version, trace_id, span_id, flags = sent.split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01") and span_id != PARENT_ID
    deadline = time.time() + 60
    while time.time() < deadline and not (receiver.find(f"chat {name}") and receiver.find("chat mock?tokens=3")):
        time.sleep(0.1)
    request, attempt = receiver.find(f"chat {name}"), receiver.find("chat mock?tokens=3")
    assert request and attempt, [s["name"] for s in receiver.spans]
    assert (request["traceId"].lower(), request["parentSpanId"].lower()) == (TRACE_ID, PARENT_ID)
    a = attrs(request)
    assert (a["gen_ai.operation.name"], a["gen_ai.request.model"]) == ("chat", name)
    assert a["gen_ai.usage.output_tokens"] == 3 and a["http.response.status_code"] == 200
    assert attempt["parentSpanId"] == request["spanId"] and attempt["spanId"].lower() == span_id
    assert attrs(attempt)["modelgate.deployment"] == "primary"
    assert env.mock_url not in json.dumps(receiver.spans) and key not in json.dumps(receiver.spans)


def test_an_mcp_tool_call_is_a_span_in_the_clients_trace_named_for_its_tool(env, traced):
    import sys
    from harness import ROOT, start
    base, receiver = traced
    admin = {"authorization": f"Bearer {env.admin_key}"}
    proc, url = start([sys.executable, str(ROOT / "tests" / "support" / "mcp_upstream.py"), "traced"])
    try:
        r = call("POST", base + "/admin/api/mcp/servers", {"name": "traced", "url": url}, headers=admin)
        assert r.status_code == 201, r.text
        key = call("POST", base + "/admin/api/keys", {"name": "traced-mcp"}, headers=admin).json()["key"]
        headers = {"authorization": f"Bearer {key}", "accept": "application/json, text/event-stream"}
        init = call("POST", base + "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            headers=headers)
        headers["mcp-session-id"] = init.headers["mcp-session-id"]
        r = call("POST", base + "/mcp", {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                        "params": {"name": "traced_echo", "arguments": {"message": "x"}}},
                 headers={**headers, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert r.status_code == 200 and "result" in r.text, r.text
        deadline = time.time() + 60
        while time.time() < deadline and not receiver.find("tools/call traced_echo"):
            time.sleep(0.1)
        span = receiver.find("tools/call traced_echo")
        assert span, [s["name"] for s in receiver.spans]
        assert (span["traceId"].lower(), span["parentSpanId"].lower()) == (TRACE_ID, PARENT_ID)
        a = attrs(span)
        assert (a["mcp.method.name"], a["gen_ai.tool.name"]) == ("tools/call", "traced_echo")
        assert url not in json.dumps(receiver.spans) and key not in json.dumps(receiver.spans)
    finally:
        stop(proc)


def test_a_trace_in_an_mcp_requests_meta_is_continued_and_carried_to_the_server(env, traced):
    import sys
    from harness import ROOT, start
    base, receiver = traced
    admin = {"authorization": f"Bearer {env.admin_key}"}
    proc, url = start([sys.executable, str(ROOT / "tests" / "support" / "mcp_upstream.py"), "metatraced"])
    try:
        r = call("POST", base + "/admin/api/mcp/servers", {"name": "metatraced", "url": url}, headers=admin)
        assert r.status_code == 201, r.text
        key = call("POST", base + "/admin/api/keys", {"name": "traced-meta"}, headers=admin).json()["key"]
        # A stateless-era call whose trace travels in `_meta` alone.
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
        r = call("POST", base + "/mcp", {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "metatraced_seen_headers", "arguments": {}, "_meta": meta}}, headers={
            "authorization": f"Bearer {key}", "accept": "application/json", "mcp-protocol-version": "2026-07-28",
            "mcp-method": "tools/call", "mcp-name": "metatraced_seen_headers"})
        assert r.status_code == 200 and "result" in r.text, r.text
        seen = json.loads(r.json()["result"]["content"][0]["text"])
        header, in_meta = seen["traceparent"], seen["(meta)"]["traceparent"]
        assert header == in_meta and in_meta.split("-")[1] == TRACE_ID and in_meta.split("-")[2] != PARENT_ID
        deadline = time.time() + 60
        while time.time() < deadline and not receiver.find("tools/call metatraced_seen_headers"):
            time.sleep(0.1)
        span = receiver.find("tools/call metatraced_seen_headers")
        assert span, [s["name"] for s in receiver.spans]
        assert (span["traceId"].lower(), span["parentSpanId"].lower()) == (TRACE_ID, PARENT_ID)
    finally:
        stop(proc)
