"""`make bench`: the mock upstream called directly, through the native
gateway and through LiteLLM's proxy at fixed rates and at saturation
(bench_load.py); streams through the gateway with its memory; the
Responses API (bridged and native) and embeddings against their direct
calls; one slow replica of three (bench_replicas.py); per-request
latency of one sequential client for the native server, the Worker under
`wrangler dev` and the Lambda under `cargo lambda watch`; sizes, cold start
and the core's Criterion micro-benchmarks. Writes BENCHMARKS.md and the plot
(bench_report.py) and prints the report.

Through a gateway, auth + rate limit + quota reservation + usage recording
are all on. `wrangler dev` and `cargo lambda watch` are local emulations,
not production: their numbers say what the code costs on this machine.
"""

import http.client
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "e2e"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from harness import (ROOT, free_port, http as call, on_free_port, round_trips, start, start_lambda,  # noqa: E402
                     start_postgres, start_redis, start_worker, wait_health)
from bench_load import (GATEWAY_CPU, ITL_MS, LOAD_CPU, RATES, load, oha, pinned, spread, start_litellm,  # noqa: E402
                        start_native, streams)
from bench_cost import (NGINX, PASSTHROUGH, PORTKEY, STRACE_RATE, STRACE_SECS, cost_section,  # noqa: E402
                        start_nginx, start_passthrough, start_portkey, syscalls)
from bench_c1 import (SUSTAINED_MS, c1_section, ceiling, concurrency_one, field_section,  # noqa: E402
                      sustained)
from bench_mcp import mcp_only, mcp_section  # noqa: E402
from bench_messages import ANTHROPIC_HDRS, MESSAGES_BODY, bench_messages, messages_section  # noqa: E402
from bench_replicas import bench_replicas  # noqa: E402
from bench_report import (GATEWAY, GATEWAY_PG, KEPT, LITELLM, MESSAGES_BRIDGED, MOCK, UNKEPT, report,  # noqa: E402
                          stream_section, stream_targets)

WARMUP = 100
REQUESTS = int(os.environ.get("MG_BENCH_REQUESTS", "1000"))
ROUNDS = 3
BODY = b'{"model":"%s","messages":[{"role":"user","content":"hello there"}],"max_tokens":8}'
RESPONSES_BODY = b'{"model":"%s","input":"hello there","max_output_tokens":8}'
UNSTORED_BODY = b'{"model":"%s","input":"hello there","max_output_tokens":8,"store":false}'
EMBED_BODY = b'{"model":"%s","input":["hello there","general kenobi"],"encoding_format":"float"}'


def percentiles(samples_ms):
    s = sorted(samples_ms)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]
    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "max": s[-1]}


def measure(base, path, body, headers):
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    conn.sock = None
    samples = []
    for i in range(WARMUP + REQUESTS):
        t = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{base}{path}: {resp.status}")
        if i >= WARMUP:
            samples.append((time.perf_counter() - t) * 1000)
    conn.close()
    return percentiles(samples)


def median_of_rounds(fn):
    return spread([fn() for _ in range(ROUNDS)])


def binding_round_trips(base, admin_key):
    """The Worker's round trips to D1 and KV so far, from its `/metrics`."""
    r = call("GET", base + "/metrics", headers={"authorization": f"Bearer {admin_key}"})
    if r.status_code != 200:
        raise RuntimeError(f"{base}/metrics: {r.status_code}")
    return round_trips(r.text)


def setup(base, admin_key, mock_url, upstream="mock?tokens=8", **model):
    """A model on the mock and a key for it (one key per gateway is enough:
    the limits are far above the load)."""
    auth = {"authorization": f"Bearer {admin_key}"}
    name = "bench-" + uuid.uuid4().hex[:6]
    r = call("POST", base + "/admin/api/models", {"name": name, "backend": "vllm", "base_url": mock_url,
                                                  "upstream_model": upstream, **model}, auth)
    assert r.status_code == 201, r.text
    r = call("POST", base + "/admin/api/keys", {"name": "bench", "rpm": 1_000_000, "quota": 10**12}, auth)
    assert r.status_code == 201, r.text
    return name, r.json()["key"]


def bench_endpoints(base, admin_key, mock_url):
    """/v1/responses (bridged to the mock's chat, and native to its
    /v1/responses) and /v1/embeddings: each through the gateway and called
    directly, one sequential client."""
    direct_hdrs = {"content-type": "application/json"}
    pairs = {}
    cases = [(KEPT, "/v1/chat/completions", BODY, "/v1/responses", RESPONSES_BODY, "bridge"),
             (UNKEPT, "/v1/chat/completions", BODY, "/v1/responses", UNSTORED_BODY, "bridge"),
             ("Responses, native", "/v1/responses", RESPONSES_BODY, "/v1/responses", RESPONSES_BODY, "native"),
             ("Embeddings (2 inputs)", "/v1/embeddings", EMBED_BODY, "/v1/embeddings", EMBED_BODY, None)]
    for label, direct_path, direct_body, path, body, mode in cases:
        extra = {"responses_api": mode} if mode else {}
        name, key = setup(base, admin_key, mock_url, **extra)
        hdrs = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        direct = median_of_rounds(lambda: measure(mock_url, direct_path, direct_body % b"mock?tokens=8", direct_hdrs))
        through = median_of_rounds(lambda: measure(base, path, body % name.encode(), hdrs))
        pairs[label] = (direct, through)
    return pairs


def micro_benchmarks():
    """Criterion's mean per iteration for the core's hot paths."""
    subprocess.run("cargo bench -q -p modelgate-core --bench hot_path -- --warm-up-time 1 --measurement-time 3",
                   shell=True, cwd=ROOT, check=True, capture_output=True)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "criterion"
    rows = []
    for bench in sorted(target.glob("*/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        rows.append((meta["full_id"], est["mean"]["point_estimate"] / 1000,
                     est["mean"]["confidence_interval"]["lower_bound"] / 1000,
                     est["mean"]["confidence_interval"]["upper_bound"] / 1000))
    return rows


def bundle_size():
    out = subprocess.run(f"make -s worker-dry-run", shell=True, cwd=ROOT, capture_output=True, text=True)
    m = re.search(r"Total Upload: ([\d.]+ \w+) / gzip: ([\d.]+ \w+)", out.stdout)
    return (m.group(1), m.group(2)) if m else ("?", "?")


def bench_lambda(tmp, admin_key, mock_url, procs):
    """The release Lambda under `cargo lambda watch --release`: per-request
    latency, and its cold start: the first request's wall time (the
    emulator spawns the function on demand) and the function's own init."""
    redis, redis_port = on_free_port(start_redis)
    procs.append(redis)
    port = free_port()
    settings = {"MG_REDIS_URL": f"redis://127.0.0.1:{redis_port}", "MG_DB_PATH": f"{tmp}/lambda.sqlite",
                "MG_ADMIN_API_KEY": admin_key, "MG_LOG": "info"}
    log_path = f"{tmp}/lambda.log"
    with open(log_path, "w") as log:
        proc = start_lambda(port, settings, tmp, log, release=True)
    procs.append(proc)
    base = f"http://127.0.0.1:{port}/lambda-url/modelgate-lambda"
    t = time.perf_counter()
    wait_health(base, timeout=600)
    first_ms = (time.perf_counter() - t) * 1000
    init = re.findall(r'"init_ms":([\d.]+)', pathlib.Path(log_path).read_text())
    name, key = setup(base, admin_key, mock_url)
    hdrs = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    result = median_of_rounds(lambda: measure(f"http://127.0.0.1:{port}",
                                              "/lambda-url/modelgate-lambda/v1/chat/completions",
                                              BODY % name.encode(), hdrs))
    # What the function itself measured per request (upstream included),
    # to tell the function's cost from the emulator's.
    own = [int(v) for v in re.findall(r'"latency_ms":(\d+)', pathlib.Path(log_path).read_text())]
    return result, {"first_ms": first_ms, "init_ms": float(init[0]) if init else None,
                    "own_p50_ms": statistics.median(own) if own else None}


def lambda_zip():
    zips = list(pathlib.Path(os.environ["CARGO_TARGET_DIR"]).glob("lambda-arm64/modelgate-lambda/bootstrap.zip"))
    return zips[0].stat().st_size if zips else None


def shared_services_gateway(bins, tmp, admin_key, mock_url):
    """The native gateway as replicas run it: PostgreSQL and Redis (on the
    gateway's core when pinned, as SQLite runs inside its process).
    ((base, path, body, headers), processes)."""
    (pg, database_url), _ = on_free_port(lambda p: start_postgres(p, tmp))
    redis, redis_port = on_free_port(start_redis)
    for p in (pg, redis):
        if GATEWAY_CPU:
            subprocess.run(["taskset", "-a", "-p", "-c", GATEWAY_CPU, str(p.pid)], check=True,
                           capture_output=True)
    gw, base = start_native(bins, tmp, admin_key, MG_DATABASE_URL=database_url,
                            MG_REDIS_URL=f"redis://127.0.0.1:{redis_port}")
    name, key = setup(base, admin_key, mock_url)
    hdrs = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    return (base, "/v1/chat/completions", BODY % name.encode(), hdrs), [pg, redis, gw]


def anchor_targets(bins, mock, mock_url, tmp, procs):
    """The mock direct, and nginx and the bare pass-through in front of it,
    as load() targets."""
    body = BODY % b"mock?tokens=8"
    direct = {"content-type": "application/json"}
    nginx, nginx_base = start_nginx(mock_url, tmp)
    procs.append(nginx)
    passthrough, passthrough_base = start_passthrough(bins, mock_url)
    procs.append(passthrough)
    return {MOCK: (mock_url + "/v1/chat/completions", direct, body, [mock.pid]),
            NGINX: (nginx_base + "/v1/chat/completions", direct, body, [nginx.pid]),
            PASSTHROUGH: (passthrough_base + "/v1/chat/completions", direct, body, [passthrough.pid])}


def portkey_load(mock_url, tmp, rates):
    """Portkey's gateway under load, started for its own runs only (as
    LiteLLM: idle, it would still share the CPUs)."""
    portkey, base, headers = start_portkey(mock_url, tmp)
    try:
        return load({PORTKEY: (base + "/v1/chat/completions", headers, BODY % b"mock?tokens=8", [portkey.pid])},
                    rates=rates)
    finally:
        portkey.terminate()
        portkey.wait(timeout=30)


def syscall_counts(targets):
    """System calls per request of the proxies (every target but the mock)."""
    calls = {}
    for label, (url, headers, body, pids) in targets.items():
        if label != MOCK:
            calls[label] = syscalls(pids, lambda: oha(url, headers, body, rate=STRACE_RATE, secs=STRACE_SECS)["ok"])
    return calls


def native_gateway(bins, tmp, admin_key, mock_url, procs):
    """The release gateway on a fresh SQLite file with a model on the mock
    and a key: (process, base URL, model name, key, request headers)."""
    native, base = start_native(bins, tmp, admin_key)
    procs.append(native)
    name, key = setup(base, admin_key, mock_url)
    return native, base, name, key, {"content-type": "application/json", "authorization": f"Bearer {key}"}


def messages_target(base, admin_key, mock_url):
    """The Messages API bridged to the mock's chat, as a target: what the
    translation costs beside the same chat request."""
    name, key = setup(base, admin_key, mock_url)
    return (base + "/v1/messages", {**ANTHROPIC_HDRS, "x-api-key": key}, MESSAGES_BODY % name.encode())


def field_method(tmp, admin_key, mock_url, targets):
    """Busbar's method beside the rest: concurrency 1 for the mock, nginx,
    the pass-through, ModelGate (SQLite; PostgreSQL + Redis; the Messages
    API bridged) in interleaved rounds; the RPS ceiling; sustained load on
    a 20 ms upstream; then Portkey and LiteLLM, each started for its own
    runs only (idle, it would still share the CPUs), at concurrency 1 in
    rounds of its own beside the direct call again. `targets`: the load
    targets (name -> (url, headers, body, pids)), ModelGate's and the
    anchors'. (the concurrency-1 phases, BENCHMARKS.md lines)."""
    direct = {MOCK: targets[MOCK]}
    c1 = dict(targets)
    url, headers, body = messages_target(targets[GATEWAY][0].removesuffix("/v1/chat/completions"), admin_key, mock_url)
    c1[MESSAGES_BRIDGED] = (url, headers, body, targets[GATEWAY][3])
    phases = [concurrency_one(c1)]
    ceilings = {name: ceiling(*t) for name, t in targets.items() if name != PASSTHROUGH}
    slow_upstream = b"mock?tokens=8&ttft_ms=%d" % SUSTAINED_MS
    slow_body = lambda body: body.replace(b"mock?tokens=8", slow_upstream)
    slow = {name: (url, hdrs, slow_body(body), pids) for name, (url, hdrs, body, pids) in targets.items()
            if name in (MOCK, NGINX)}
    for name in (GATEWAY, GATEWAY_PG):
        gw_base = targets[name][0].removesuffix("/v1/chat/completions")
        model, key = setup(gw_base, admin_key, mock_url, slow_upstream.decode())
        slow[name] = (targets[name][0], {"content-type": "application/json", "authorization": f"Bearer {key}"},
                      BODY % model.encode(), targets[name][3])
    slow_results = sustained(slow)
    portkey, base, headers = start_portkey(mock_url, tmp)
    try:
        peer = (base + "/v1/chat/completions", headers, BODY % b"mock?tokens=8", [portkey.pid])
        phases.append(concurrency_one({**direct, PORTKEY: peer}))
        ceilings[PORTKEY] = ceiling(*peer)
        slow_results.update(sustained({PORTKEY: (peer[0], headers, slow_body(peer[2]), peer[3])}))
    finally:
        portkey.terminate()
        portkey.wait(timeout=30)
    with open(f"{tmp}/litellm-c1.log", "w") as log:
        litellm, ll_base, ll_key = start_litellm(os.environ["MG_BENCH_VENV"], mock_url, tmp, log)
    try:
        ll_hdrs = {"content-type": "application/json", "authorization": f"Bearer {ll_key}"}
        peer = (ll_base + "/v1/chat/completions", ll_hdrs, BODY % b"bench", [litellm.pid])
        phases.append(concurrency_one({**direct, LITELLM: peer}))
        ceilings[LITELLM] = ceiling(*peer)
    finally:
        litellm.terminate()
        litellm.wait(timeout=30)
    return phases, c1_section(phases, MOCK, NGINX) + field_section(ceilings, slow_results, MOCK)


def anchors_and_gateway(bins, tmp, admin_key, procs):
    """The mock, the anchors in front of it and the native gateway on
    SQLite: the mock's URL and the load targets."""
    mock, mock_url = start(pinned(LOAD_CPU, [str(bins / "modelgate-mock")]))
    procs.append(mock)
    targets = anchor_targets(bins, mock, mock_url, tmp, procs)
    native, base, name, _, hdrs = native_gateway(bins, tmp, admin_key, mock_url, procs)
    targets[GATEWAY] = (base + "/v1/chat/completions", hdrs, BODY % name.encode(), [native.pid])
    return mock_url, targets


def c1_only():
    """`make bench-c1`: the field's method alone (concurrency 1, the RPS
    ceiling, sustained on a 20 ms upstream), printed."""
    bins = pathlib.Path(os.environ["MG_BIN_DIR"])
    tmp = tempfile.mkdtemp(prefix="mg-bench-")
    procs = []
    try:
        admin_key = "bench-admin-" + uuid.uuid4().hex
        mock_url, targets = anchors_and_gateway(bins, tmp, admin_key, procs)
        pg_target, pg_procs = shared_services_gateway(bins, tmp, admin_key, mock_url)
        procs.extend(pg_procs)
        targets[GATEWAY_PG] = (pg_target[0] + pg_target[1], pg_target[3], pg_target[2], [p.pid for p in pg_procs])
        _, lines = field_method(tmp, admin_key, mock_url, targets)
        print("\n".join(lines))
    finally:
        stop_all(procs)


def streams_only():
    """`make bench-streams`: the stream runs alone (direct, the pass-through,
    ModelGate at each concurrency, with its peak RSS) and their targets, printed."""
    bins = pathlib.Path(os.environ["MG_BIN_DIR"])
    tmp = tempfile.mkdtemp(prefix="mg-bench-")
    procs = []
    try:
        admin_key = "bench-admin-" + uuid.uuid4().hex
        mock, mock_url = start(pinned(LOAD_CPU, [str(bins / "modelgate-mock")]))
        procs.append(mock)
        targets = anchor_targets(bins, mock, mock_url, tmp, procs)
        native, base, _, key, _ = native_gateway(bins, tmp, admin_key, mock_url, procs)
        upstream = f"mock?tokens=50&ttft_ms=20&itl_ms={ITL_MS}&stamp=1"
        name, _ = setup(base, admin_key, mock_url, upstream)
        bare = targets[PASSTHROUGH][0].removesuffix("/v1/chat/completions")
        stream = streams(bins, mock_url, base, upstream, name, key, native.pid, bare)
        lines = ["| target | measured | met |", "|---|---|---|"]
        stream_targets(lambda t, m, ok: lines.append(f"| {t} | {m} | {'yes' if ok else '**no**'} |"), stream)
        print("\n".join(stream_section(stream) + [""] + lines))
    finally:
        stop_all(procs)


def stop_all(procs):
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        p.wait(timeout=10)


def cost_only():
    """`make bench-cost`: saturation, CPU and system calls per request of
    the mock, nginx, the pass-through, ModelGate and Portkey, printed."""
    bins = pathlib.Path(os.environ["MG_BIN_DIR"])
    tmp = tempfile.mkdtemp(prefix="mg-bench-")
    procs = []
    try:
        mock_url, targets = anchors_and_gateway(bins, tmp, "bench-admin-" + uuid.uuid4().hex, procs)
        results = load(targets, rates=[])
        calls = syscall_counts(targets)
        results.update(portkey_load(mock_url, tmp, rates=[]))
        print("\n".join(cost_section(results, calls, [*targets, PORTKEY])))
    finally:
        stop_all(procs)


def main():
    bins = pathlib.Path(os.environ["MG_BIN_DIR"])
    tmp = tempfile.mkdtemp(prefix="mg-bench-")
    procs = []
    try:
        mock, mock_url = start(pinned(LOAD_CPU, [str(bins / "modelgate-mock")]))
        procs.append(mock)
        admin_key = "bench-admin-" + uuid.uuid4().hex
        results = {}
        direct_hdrs = {"content-type": "application/json"}
        direct = lambda: measure(mock_url, "/v1/chat/completions", BODY % b"mock?tokens=8", direct_hdrs)
        results[MOCK] = median_of_rounds(direct)

        native, base, name, key, hdrs = native_gateway(bins, tmp, admin_key, mock_url, procs)
        results[GATEWAY] = median_of_rounds(
            lambda: measure(base, "/v1/chat/completions", BODY % name.encode(), hdrs))

        targets = anchor_targets(bins, mock, mock_url, tmp, procs)
        url, nginx_hdrs, nginx_body, _ = targets[NGINX]
        results[NGINX] = median_of_rounds(lambda: measure(url.removesuffix("/v1/chat/completions"),
                                                          "/v1/chat/completions", nginx_body, nginx_hdrs))
        targets[GATEWAY] = (base + "/v1/chat/completions", hdrs, BODY % name.encode(), [native.pid])
        pg_target, pg_procs = shared_services_gateway(bins, tmp, admin_key, mock_url)
        procs.extend(pg_procs)
        results[GATEWAY_PG] = median_of_rounds(lambda: measure(*pg_target))
        targets[GATEWAY_PG] = (pg_target[0] + pg_target[1], pg_target[3], pg_target[2], [p.pid for p in pg_procs])
        endpoint_results = bench_endpoints(base, admin_key, mock_url)
        messages_results = bench_messages(measure, median_of_rounds, os.environ["MG_BENCH_VENV"], tmp, procs, base,
                                          admin_key, mock_url)
        mcp_lines = mcp_section(bins, tmp, procs, os.environ["MG_UPSTREAM_PYTHON"])
        load_results = load(targets)
        calls = syscall_counts(targets)
        c1_phases, field_lines = field_method(tmp, admin_key, mock_url, targets)
        with open(f"{tmp}/litellm.log", "w") as log:
            litellm, ll_base, ll_key = start_litellm(os.environ["MG_BENCH_VENV"], mock_url, tmp, log)
        procs.append(litellm)
        ll_hdrs = {"content-type": "application/json", "authorization": f"Bearer {ll_key}"}
        results[LITELLM] = median_of_rounds(lambda: measure(ll_base, "/v1/chat/completions", BODY % b"bench", ll_hdrs))
        load_results.update(load({LITELLM: (ll_base + "/v1/chat/completions", ll_hdrs, BODY % b"bench",
                                            [litellm.pid])}))
        litellm.terminate()
        litellm.wait(timeout=30)
        load_results.update(portkey_load(mock_url, tmp, RATES))

        weighted, weighted_base = start_native(bins, tmp, admin_key, MG_ROUTING="weighted")
        procs.append(weighted)
        replica_results = bench_replicas(bins, os.environ["MG_BENCH_VENV"], tmp, procs, base, weighted_base, admin_key)
        weighted.terminate()

        upstream = f"mock?tokens=50&ttft_ms=20&itl_ms={ITL_MS}&stamp=1"
        stream_name, _ = setup(base, admin_key, mock_url, upstream)
        bare = targets[PASSTHROUGH][0].removesuffix("/v1/chat/completions")
        stream_results = streams(bins, mock_url, base, upstream, stream_name, key, native.pid, bare)

        wport = free_port()
        with open(f"{tmp}/wrangler.log", "w") as log:
            worker = start_worker(wport, {"MG_ADMIN_API_KEY": admin_key}, tmp, log)
        procs.append(worker)
        wbase = f"http://127.0.0.1:{wport}"
        wait_health(wbase, timeout=120)
        name, key = setup(wbase, admin_key, mock_url)
        hdrs = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        trips = binding_round_trips(wbase, admin_key)
        results["Worker under wrangler dev (D1, KV)"] = median_of_rounds(
            lambda: measure(wbase, "/v1/chat/completions", BODY % name.encode(), hdrs))
        served = ROUNDS * (WARMUP + REQUESTS)
        trips = {k: (n - trips[k]) / served for k, n in binding_round_trips(wbase, admin_key).items()}

        lambda_result, cold = bench_lambda(tmp, admin_key, mock_url, procs)
        results["Lambda under cargo lambda watch (Redis, SQLite)"] = lambda_result
    finally:
        stop_all(procs)

    raw, gz = bundle_size()
    report(results, load_results, stream_results, raw, gz, micro_benchmarks(), cold, lambda_zip(), REQUESTS,
           WARMUP, endpoint_results, replica_results, calls, trips, messages_section(*messages_results), c1_phases,
           field_lines, mcp_lines)


def messages_only():
    """`make bench-messages`: the Messages API section alone, printed."""
    bins = pathlib.Path(os.environ["MG_BIN_DIR"])
    tmp = tempfile.mkdtemp(prefix="mg-bench-")
    procs = []
    try:
        mock, mock_url = start(pinned(LOAD_CPU, [str(bins / "modelgate-mock")]))
        procs.append(mock)
        admin_key = "bench-admin-" + uuid.uuid4().hex
        native, base = start_native(bins, tmp, admin_key)
        procs.append(native)
        results = bench_messages(measure, median_of_rounds, os.environ["MG_BENCH_VENV"], tmp, procs, base, admin_key,
                                 mock_url)
        print("\n".join(messages_section(*results)))
    finally:
        stop_all(procs)


if __name__ == "__main__":
    modes = {"cost": cost_only, "messages": messages_only, "c1": c1_only, "streams": streams_only, "mcp": mcp_only}
    modes.get(sys.argv[1] if sys.argv[1:] else "", main)()
