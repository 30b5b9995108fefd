"""One structured log line per request on every runtime: what the Worker's
and the Lambda's log analytics chart (their platforms have no scraper), and
what the native server's logs show beside its metrics. Never a key."""

import json
import time


def completed_line(env, request_id):
    """The JSON `completed` line of `request_id` in the gateway's log (the
    runtimes' consoles may prefix it)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        for line in env.log_path.read_text(errors="replace").splitlines():
            if request_id in line and '"completed"' in line:
                return json.loads(line[line.index("{"):])
        time.sleep(0.1)
    raise AssertionError(f"no completed line for {request_id}")


def test_each_request_logs_its_figures_once(env):
    model = env.make_model("mock?tokens=3&cached=1", prices={"input": 1000, "output": 2000})
    created = env.make_key()
    client = env.client(created["key"])
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello there"}])
    r = raw.parse()
    request_id = raw.headers["x-request-id"]
    line = completed_line(env, request_id)
    fields = line.get("fields", line)
    assert fields["model"] == model and fields["key_id"] == created["id"]
    assert (fields["endpoint"], fields["deployment"], fields["status"]) == ("chat", "primary", 200)
    assert (fields["prompt_tokens"], fields["completion_tokens"], fields["cached_tokens"]) == (
        r.usage.prompt_tokens, 3, 1)
    assert fields["cost_nanos"] == ((r.usage.prompt_tokens - 1) * 1000 + 1000 + 3 * 2000) * 1000
    assert fields["latency_ms"] >= 0
    text = env.log_path.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if request_id in ln and '"completed"' in ln]
    assert len(lines) == 1, lines
    assert created["key"] not in text
