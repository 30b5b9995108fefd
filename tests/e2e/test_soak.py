"""A bounded soak on every runtime: many clients at once, buffered and
streamed answers, upstream faults, and clients that hang up mid-stream.
Afterwards the gateway's books must match what the mock upstream served,
and every quota must be settled with nothing left reserved."""

import concurrent.futures
import http.client
import json
import socket
import time
import urllib.parse
import urllib.request

import openai

PARALLEL = 8
WHOLE = 160
CUT = 40
# Upstream errors here are 400s: all these models share the mock's address,
# and a run of 5xx from one would open the circuit breaker for that address
# (per endpoint, by design) for the tests after this one. The Rust soak
# covers 5xx with retries on an upstream of its own.
MIX = ["mock?tokens=12", "mock?tokens=20&itl_ms=1", "mock?tokens=20&fault=cut&after=4", "mock?status=400",
       "mock?tokens=6&fault=malformed&after=3"]


def served(env):
    return json.load(urllib.request.urlopen(env.mock_url + "/_mock/stats"))


def hang_up_after(env, key, model, events):
    """Stream, read `events` events, then drop the connection."""
    url = urllib.parse.urlsplit(env.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "soak"}]})
    conn.request("POST", url.path + "/v1/chat/completions", body=body,
                 headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    resp = conn.getresponse()
    got = b""
    while resp.status == 200 and got.count(b"data: ") < events:
        chunk = resp.read1(4096)
        if not chunk:
            break
        got += chunk
    conn.sock.shutdown(socket.SHUT_RDWR)
    resp.close()
    conn.close()


def whole(client, model, i):
    msgs = [{"role": "user", "content": "soak test words"}]
    try:
        if i % 2:
            for _ in client.chat.completions.create(model=model, messages=msgs, stream=True):
                pass
        else:
            client.chat.completions.create(model=model, messages=msgs)
    except openai.APIError:
        pass  # the faults answer with errors, in band or not: that is the point


def settled(env, created, requests, deadline_s=60):
    """The key's usage totals once `requests` records exist (streams cut by
    the client settle in the background), and the key itself."""
    deadline = time.time() + deadline_s
    while True:
        totals = env.admin("GET", f"/usage?key_id={created['id']}&from=2020-01-01").json()["totals"]
        key = env.admin("GET", f"/keys/{created['id']}").json()
        if (totals["requests"] >= requests and key["quota_reserved"] == 0) or time.time() > deadline:
            return totals, key
        time.sleep(0.2)


def test_soak_books_balance_with_faults_and_hang_ups(env):
    models = [env.make_model(m) for m in MIX]
    first = env.make_key(rpm=1_000_000, quota=10**9)
    client = env.client(first["key"])
    before = served(env)
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(lambda i: whole(client, models[i % len(models)], i), range(WHOLE)))
    after = served(env)
    totals, key = settled(env, first, WHOLE)
    assert totals["requests"] == WHOLE, totals
    assert totals["completion_tokens"] == after["completion_tokens"] - before["completion_tokens"], (totals, after)
    assert key["quota_reserved"] == 0 and key["quota_used"] == totals["total_tokens"], (key, totals)

    second = env.make_key(rpm=1_000_000, quota=10**9)
    slow = env.make_model("mock?tokens=200&itl_ms=5")
    before = served(env)
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(lambda i: hang_up_after(env, second["key"], slow, 2 + i % 5), range(CUT)))
    totals, key = settled(env, second, CUT)
    after = served(env)
    assert totals["requests"] == CUT, totals
    generated = after["completion_tokens"] - before["completion_tokens"]
    assert 0 < totals["completion_tokens"] <= generated, (totals, generated)
    assert key["quota_reserved"] == 0 and key["quota_used"] == totals["total_tokens"], (key, totals)
