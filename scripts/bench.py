"""`make bench`: per-request latency of the mock upstream called directly,
through the native gateway, and through the Worker under `wrangler dev`,
plus the Worker's deploy bundle size. Writes BENCHMARKS.md and prints it.

Sequential keep-alive requests from one client (latency, not throughput),
non-streaming chat with auth + rate limit + quota reservation + usage
recording all on. `wrangler dev` is a local emulation of Workers, not
production: its numbers say what the Worker code costs on this machine,
not what the edge will do.
"""

import http.client
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from harness import (ROOT, free_port, http as call, start, start_lambda, start_redis, start_worker,  # noqa: E402
                     wait_health)

WARMUP = 100
REQUESTS = int(os.environ.get("MG_BENCH_REQUESTS", "1000"))
ROUNDS = 3
BODY = b'{"model":"%s","messages":[{"role":"user","content":"hello there"}],"max_tokens":8}'


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
    rounds = [fn() for _ in range(ROUNDS)]
    out = {}
    for k in rounds[0]:
        vals = [r[k] for r in rounds]
        out[k] = (statistics.median(vals), min(vals), max(vals))
    return out


def setup(base, admin_key, mock_url):
    auth = {"authorization": f"Bearer {admin_key}"}
    name = "bench-" + uuid.uuid4().hex[:6]
    r = call("POST", base + "/admin/api/models", {"name": name, "backend": "vllm", "base_url": mock_url,
                                                  "upstream_model": "mock?tokens=8"}, auth)
    assert r.status_code == 201, r.text
    r = call("POST", base + "/admin/api/keys", {"name": "bench", "rpm": 1_000_000, "quota": 10**12}, auth)
    assert r.status_code == 201, r.text
    return name, r.json()["key"]


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
    redis_port = free_port()
    procs.append(start_redis(redis_port))
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


def main():
    bins = pathlib.Path(os.environ["MG_BIN_DIR"])
    tmp = tempfile.mkdtemp(prefix="mg-bench-")
    procs = []
    try:
        mock, mock_url = start([str(bins / "modelgate-mock")])
        procs.append(mock)
        admin_key = "bench-admin-" + uuid.uuid4().hex
        results = {}
        direct = lambda: measure(mock_url, "/v1/chat/completions", BODY % b"mock?tokens=8",
                                 {"content-type": "application/json"})
        results["mock upstream, direct"] = median_of_rounds(direct)

        port = free_port()
        env = {**os.environ, "MG_PORT": str(port), "MG_DB_PATH": f"{tmp}/db.sqlite", "MG_ADMIN_API_KEY": admin_key,
               "MG_LOG": "warn"}
        native = subprocess.Popen([str(bins / "modelgate")], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        procs.append(native)
        base = f"http://127.0.0.1:{port}"
        wait_health(base)
        name, key = setup(base, admin_key, mock_url)
        hdrs = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        results["native gateway (SQLite)"] = median_of_rounds(
            lambda: measure(base, "/v1/chat/completions", BODY % name.encode(), hdrs))

        wport = free_port()
        with open(f"{tmp}/wrangler.log", "w") as log:
            worker = start_worker(wport, {"MG_ADMIN_API_KEY": admin_key}, tmp, log)
        procs.append(worker)
        wbase = f"http://127.0.0.1:{wport}"
        wait_health(wbase, timeout=120)
        name, key = setup(wbase, admin_key, mock_url)
        hdrs = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        results["Worker under wrangler dev (D1, KV)"] = median_of_rounds(
            lambda: measure(wbase, "/v1/chat/completions", BODY % name.encode(), hdrs))

        lambda_result, cold = bench_lambda(tmp, admin_key, mock_url, procs)
        results["Lambda under cargo lambda watch (Redis, SQLite)"] = lambda_result
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=10)

    raw, gz = bundle_size()
    report(results, raw, gz, micro_benchmarks(), cold, lambda_zip())


def report(results, raw, gz, micro, cold, zip_size):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (scripts/bench.py) on one machine, everything on loopback:",
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python client.",
        "",
        "## Per-request latency",
        "",
        f"Non-streaming chat (8 completion tokens) from the Rust mock upstream; one keep-alive client,"
        f" {REQUESTS} sequential requests after {WARMUP} warm-up, {ROUNDS} rounds: the median of the rounds,"
        " with the lowest and highest round in brackets. Through a gateway, every request is authenticated"
        " (SHA-256 + store lookup), rate limited (GCRA), reserves quota, and settles a usage record.",
        "",
        "| path | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = " | ".join(f"{r[k][0]:.2f} [{r[k][1]:.2f}-{r[k][2]:.2f}]" for k in ("p50", "p90", "p99", "max"))
        lines.append(f"| {name} | {cells} |")
    base = results["mock upstream, direct"]
    lines.append("")
    lines.append("Added by the gateway (median p50 / p99 minus the direct call's):")
    for name, r in results.items():
        if name != "mock upstream, direct":
            lines.append(f"- {name}: +{r['p50'][0] - base['p50'][0]:.2f} ms p50,"
                         f" +{r['p99'][0] - base['p99'][0]:.2f} ms p99")
    lines += [
        "",
        "`wrangler dev --local` runs the Worker in workerd with D1 and KV emulated on local SQLite files:",
        "it is not the edge, and its numbers are for comparing code, not for promising latency.",
        "",
        "`cargo lambda watch` emulates the Lambda runtime API on this machine (the function is the release"
        " build, x86_64): not AWS, where the Function URL and the network add their own latency.",
        "",
        "## Lambda",
        "",
        f"- Per request, the function's own log (`latency_ms`, upstream included, whole milliseconds) has a"
        f" median of **{cold['own_p50_ms']:.0f} ms**: the rest of the latency above is the emulator's."
        if cold.get("own_p50_ms") is not None else "- The function logged no latencies.",
        f"- Deployment zip (`make lambda-zip`: `cargo lambda build --release --arm64 --output-format zip`):"
        f" **{zip_size / 1e6:.1f} MB**." if zip_size else "- Deployment zip: not built.",
        f"- Cold start under `cargo lambda watch --release`, binary already built: first request"
        f" {cold['first_ms']:.0f} ms wall (the emulator spawns the function on demand, then the request runs),"
        f" of which the function's own init (process start to ready: settings, SQLite open and migrations,"
        f" Redis client, TLS roots) is **{cold['init_ms']:.1f} ms**." if cold["init_ms"] is not None
        else "- Cold start: the function logged no init time.",
        "",
        "## Hot paths in the core (Criterion)",
        "",
        "Mean time per iteration, with the 95% confidence interval; one core, no IO.",
        "",
        "| path | mean µs | interval µs |",
        "|---|---|---|",
        *[f"| {name} | {mean:.2f} | {lo:.2f}-{hi:.2f} |" for name, mean, lo, hi in micro],
        "",
        "## Worker bundle",
        "",
        f"`wrangler deploy --dry-run` (offline): **{raw}** raw, **{gz}** gzip (limit on the free plan: 3 MiB"
        " gzip; target here: under 1 MB gzip).",
        "",
    ]
    text = "\n".join(lines)
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
