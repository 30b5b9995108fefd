"""One slow replica of three for `make bench`: one model served by three
mock upstreams, two answering in 5 ms and one in 200 ms, under a closed
loop of concurrent clients. Round-robin over the three (the client rotating
over them itself, no gateway), ModelGate with weighted random choice,
ModelGate with its default choice (power of two choices by load and
latency), and LiteLLM's router with its default strategy on the same
three: latency percentiles and the share the slow replica served.
"""

import http.client
import statistics
import threading
import time
import uuid

from harness import http as call, start
from bench_load import LOAD_CPU, pinned, start_litellm

REPLICA_MS = (5, 5, 200)
REQUESTS = 1500
PARALLEL = 8
ROUNDS = 3
BODY = '{"model":"%s","messages":[{"role":"user","content":"hello there"}],"max_tokens":8}'

ROUND_ROBIN = "round-robin over the three, direct (no gateway)"
WEIGHTED = "ModelGate, weighted random (`MG_ROUTING=weighted`)"
P2C = "ModelGate, power of two choices by load and latency (default)"
LITELLM = "LiteLLM router, default strategy (`simple-shuffle`)"


def upstream(ms):
    return f"mock?tokens=8&ttft_ms={ms}"


def closed_loop(targets, headers, n, parallel):
    """`parallel` clients, each on its own keep-alive connection, send `n`
    requests in all; request i goes to targets[i % len(targets)] (url,
    body). Latencies in ms."""
    lock, counter, samples = threading.Lock(), [0], []

    def client():
        conns = {}
        while True:
            with lock:
                i = counter[0]
                counter[0] += 1
            if i >= n:
                break
            url, body = targets[i % len(targets)]
            hostport, path = url.removeprefix("http://").split("/", 1)
            conn = conns.get(hostport) or conns.setdefault(hostport, http.client.HTTPConnection(hostport))
            t = time.perf_counter()
            conn.request("POST", "/" + path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url}: {resp.status}")
            with lock:
                samples.append((time.perf_counter() - t) * 1000)
        for c in conns.values():
            c.close()

    threads = [threading.Thread(target=client) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples


def served(mocks):
    return [call("GET", url + "/_mock/stats").json()["requests"] for url in mocks]


def run(mocks, targets, headers):
    """Rounds of the closed loop: p50/p99 of each round and the slow
    replica's share, as the median round with the lowest and highest."""
    rounds = []
    for _ in range(ROUNDS):
        before = served(mocks)
        s = sorted(closed_loop(targets, headers, REQUESTS, PARALLEL))
        after = served(mocks)
        counts = [a - b for a, b in zip(after, before)]
        rounds.append({"p50": s[len(s) // 2], "p99": s[int(0.99 * len(s))],
                       "slow": 100 * counts[2] / max(sum(counts), 1)})
    return {k: (statistics.median(r[k] for r in rounds), min(r[k] for r in rounds), max(r[k] for r in rounds))
            for k in rounds[0]}


def gateway_model(base, admin_key, mocks):
    auth = {"authorization": f"Bearer {admin_key}"}
    name = "replicas-" + uuid.uuid4().hex[:6]
    deployments = [{"name": f"r{i}", "backend": "vllm", "base_url": url, "upstream_model": upstream(ms)}
                   for i, (url, ms) in enumerate(zip(mocks, REPLICA_MS))]
    r = call("POST", base + "/admin/api/models", {"name": name, "deployments": deployments}, auth)
    assert r.status_code == 201, r.text
    r = call("POST", base + "/admin/api/keys", {"name": "replicas", "rpm": 1_000_000, "quota": None}, auth)
    assert r.status_code == 201, r.text
    return name, r.json()["key"]


def bench_replicas(bins, bench_venv, tmp, procs, native, weighted, admin_key):
    """`native` and `weighted`: base URLs of ModelGate with its default
    choice and with MG_ROUTING=weighted."""
    mocks = []
    for _ in REPLICA_MS:
        proc, url = start(pinned(LOAD_CPU, [str(bins / "modelgate-mock")]))
        procs.append(proc)
        mocks.append(url)
    plain = {"content-type": "application/json"}
    results = {}
    direct = [(f"{url}/v1/chat/completions", BODY % upstream(ms)) for url, ms in zip(mocks, REPLICA_MS)]
    results[ROUND_ROBIN] = run(mocks, direct, plain)
    for label, base in ((WEIGHTED, weighted), (P2C, native)):
        name, key = gateway_model(base, admin_key, mocks)
        hdrs = {**plain, "authorization": f"Bearer {key}"}
        results[label] = run(mocks, [(f"{base}/v1/chat/completions", BODY % name)], hdrs)
    models = [("replicas", f"openai/{upstream(ms)}", f"{url}/v1") for url, ms in zip(mocks, REPLICA_MS)]
    with open(f"{tmp}/litellm-replicas.log", "w") as log:
        litellm, ll_base, ll_key = start_litellm(bench_venv, mocks[0], tmp, log, models)
    try:
        hdrs = {**plain, "authorization": f"Bearer {ll_key}"}
        results[LITELLM] = run(mocks, [(f"{ll_base}/v1/chat/completions", BODY % "replicas")], hdrs)
    finally:
        litellm.terminate()
        litellm.wait(timeout=30)
    return results


def replicas_section(results):
    cell = lambda v, f: f"{f(v[0])} ({f(v[1])}–{f(v[2])})"
    ms = lambda x: f"{x:.1f}"
    pct = lambda x: f"{x:.1f}%"
    lines = [
        "## One slow replica of three",
        "",
        f"One model served by three mock upstreams answering non-streaming chat in {REPLICA_MS[0]}, {REPLICA_MS[1]}"
        f" and {REPLICA_MS[2]} ms; {PARALLEL} clients in a closed loop, {REQUESTS} requests a round, {ROUNDS}"
        " rounds: the median round, with the lowest and highest in brackets. The share is what the slow replica"
        " served (from the mocks' own counts).",
        "",
        "| path | p50 ms | p99 ms | slow replica's share |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {cell(r['p50'], ms)} | {cell(r['p99'], ms)} | {cell(r['slow'], pct)} |")
    if P2C in results and ROUND_ROBIN in results:
        p2c, rr = results[P2C], results[ROUND_ROBIN]
        lines += ["", f"Blind to latency, round-robin and weighted random send the slow replica its third of the"
                  f" traffic, so their p99 is its {REPLICA_MS[2]} ms ({ms(rr['p99'][0])} ms round-robin). ModelGate's"
                  f" choice learns each replica's latency from its answers and sends the slow one"
                  f" {pct(p2c['slow'][0])} (its first requests, before it was measured, and whatever overflow"
                  f" would cost more on the fast ones): its p99 is {ms(p2c['p99'][0])} ms, the fast replicas' plus"
                  " the gateway. LiteLLM's default shuffles by weight like the second row, with its own overhead"
                  " on top at this concurrency."]
    return lines
