"""Load for `make bench`: fixed-rate and saturation runs with oha against the
mock upstream, the native gateway and LiteLLM's proxy, and streams with
modelgate-streamload against the mock and the gateway.

The gateways run on one core, the mock and the load generators on the other
(taskset), so a gateway never takes CPU from the load that measures it.
"""

import json
import os
import pathlib
import statistics
import subprocess
import threading
import time

from harness import free_port, wait_health

TOOLS = pathlib.Path(os.environ.get("MG_CACHE_DIR", pathlib.Path.home() / ".cache/modelgate")) / "tools"
OHA = str(TOOLS / "bin" / "oha")
SECS = int(os.environ.get("MG_BENCH_SECS", "10"))
REPEATS = int(os.environ.get("MG_BENCH_REPEATS", "3"))
RATES = [500, 1000, 2000, 5000]
CONNECTIONS = 50
STREAMS = [100, 300, 512, 1000]
ITL_MS = 20
# Three processes (gateway, mock, load generator) cannot each have a core of
# their own on a 2-core machine, so by default all share both cores, as the
# targets are stated. MG_BENCH_PIN=1 pins the gateway alone to CPU 1 and the
# mock and load generator to CPU 0 instead.
PINNED = os.environ.get("MG_BENCH_PIN") == "1" and (os.cpu_count() or 1) >= 2
GATEWAY_CPU, LOAD_CPU = ("1", "0") if PINNED else (None, None)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree(pid):
    """`pid` and its descendants (nginx's worker, PostgreSQL's backends)."""
    children = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    """User + system CPU so far of these processes and their descendants,
    every thread of each."""
    total = 0
    for root in pids:
        for p in tree(root):
            try:
                fields = pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def pinned(cpu, cmd):
    return ["taskset", "-c", cpu, *cmd] if cpu else list(cmd)


def cpu_times():
    """(stolen, total) jiffies over all CPUs so far: stolen is the time the
    hypervisor ran other guests while this one wanted the CPU."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
    return fields[7], sum(fields)


def stolen_since(start):
    """Percent of the CPU time since `start` (a cpu_times()) that was stolen."""
    (s0, t0), (s1, t1) = start, cpu_times()
    return 100 * (s1 - s0) / max(t1 - t0, 1)


def oha(url, headers, body, rate=None, secs=SECS, pids=(), connections=CONNECTIONS):
    """One oha run; latencies in ms, with coordinated omission corrected
    for fixed rates (a request's latency counts from when it was due), and
    the CPU time per answered request of the processes `pids` (the
    target's)."""

    cmd = [OHA, "-z", f"{secs}s", "-w", "-c", str(connections), "--no-tui", "--output-format", "json", "-m", "POST",
           "-d", body.decode()]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    start, cpu = cpu_times(), cpu_seconds(pids)
    out = subprocess.run(pinned(LOAD_CPU, cmd + [url]), capture_output=True, text=True, check=True).stdout
    stolen, cpu = stolen_since(start), cpu_seconds(pids) - cpu
    r = json.loads(out)
    pct = r["latencyPercentiles"]
    ok = r["statusCodeDistribution"].get("200", 0)
    total = sum(r["statusCodeDistribution"].values()) + sum(r["errorDistribution"].values())
    ms = lambda v: (v or 0) * 1000
    return {"rps": ok / r["summary"]["total"], "p50": ms(pct["p50"]), "p90": ms(pct["p90"]), "p99": ms(pct["p99"]),
            "max": ms(r["summary"]["slowest"]), "errors": total - ok, "stolen": stolen, "ok": ok,
            "cpu_us": cpu * 1e6 / max(ok, 1)}


def spread(runs):
    """Median of the repeats, with the lowest and highest."""
    return {k: (statistics.median(r[k] for r in runs), min(r[k] for r in runs), max(r[k] for r in runs))
            for k in runs[0]}


def load(targets, rates=RATES):
    """targets: name -> (url, headers, body, pids whose CPU to count), at
    each of `rates` and at saturation. Repeats interleave the targets so
    drift on the machine spreads over all of them."""
    for url, headers, body, _ in targets.values():
        oha(url, headers, body, rate=500, secs=2)  # warm-up: connections, caches
    runs = {(name, rate): [] for name in targets for rate in rates + [None]}
    for _ in range(REPEATS):
        for rate in rates + [None]:
            for name, (url, headers, body, pids) in targets.items():
                runs[(name, rate)].append(oha(url, headers, body, rate=rate, pids=pids))
    return {key: spread(r) for key, r in runs.items()}


def start_litellm(venv, mock_url, tmp, log, models=None):
    """LiteLLM's proxy (on the gateway's core when pinned), offline, one
    model on the mock (or `models`: (model_name, model, api_base) entries,
    several of one name being deployments its router chooses among), a
    master key (its cheapest auth: no database, no virtual keys). Started
    only for its own runs: idle, it still keeps background tasks busy that
    would slow whatever shares its core."""
    port = free_port()
    cfg = pathlib.Path(tmp) / f"litellm-{port}.yaml"
    models = models or [("bench", "openai/mock?tokens=8", f"{mock_url}/v1")]
    cfg.write_text("model_list:\n" + "".join(
        f"  - model_name: {name}\n    litellm_params:\n      model: {model}\n      api_base: {base}\n"
        "      api_key: unused\n" for name, model, base in models))
    key = "sk-bench-" + os.urandom(16).hex()
    env = {**os.environ, "LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_TELEMETRY": "False"}
    proc = subprocess.Popen(pinned(GATEWAY_CPU, [f"{venv}/bin/litellm", "--config", str(cfg), "--host", "127.0.0.1",
                                                 "--port", str(port)]),
                            env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    wait_health(base, timeout=180, path="/health/liveliness")
    return proc, base, key


def start_native(bins, tmp, admin_key, **env):
    """The release `modelgate` on a fresh database (on the gateway's core
    when pinned); its process and base URL."""
    port = free_port()
    env = {**os.environ, "MG_PORT": str(port), "MG_DB_PATH": f"{tmp}/db-{port}.sqlite",
           "MG_ADMIN_API_KEY": admin_key, "MG_LOG": "warn", **env}
    proc = subprocess.Popen(pinned(GATEWAY_CPU, [str(bins / "modelgate")]), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_health(base)
    return proc, base


class RssSampler:
    """The largest resident set of a process seen every 50 ms."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.05):
            for line in open(f"/proc/{self.pid}/status"):
                if line.startswith("VmRSS:"):
                    self.peak = max(self.peak, int(line.split()[1]) * 1024)

    def done(self):
        self.stop.set()
        self.thread.join()
        return self.peak


def streams(bins, direct_url, gateway_url, model, gateway_model, key, gateway_pid, bare_url):
    """Streams with a chunk every 20 ms, at each concurrency: direct, through
    the stack alone (`bare_url`: the pass-through), then through the gateway
    (with its peak RSS). Repeated; medians with spread."""
    secs = max(SECS, 8)

    def run(url, m, k, n):
        cmd = [str(bins / "modelgate-streamload"), "--url", url, "--model", m, "--streams", str(n),
               "--secs", str(secs)]
        if k:
            cmd += ["--key", k]
        start = cpu_times()
        r = json.loads(subprocess.run(pinned(LOAD_CPU, cmd), capture_output=True, text=True, check=True).stdout)
        flat = {"streams": r["streams"], "errors": r["errors"], "stolen": stolen_since(start)}
        for metric in ("ttfb_ms", "delay_ms", "gap_ms"):
            for q in ("p50", "p99", "max"):
                flat[f"{metric}.{q}"] = (r[metric] or {}).get(q, float("nan"))
        return flat

    out = {}
    for n in STREAMS:
        direct, through, bare = [], [], []
        for _ in range(REPEATS):
            direct.append(run(direct_url, model, None, n))
            bare.append(run(bare_url, model, None, n))
            rss = RssSampler(gateway_pid)
            through.append({**run(gateway_url, gateway_model, key, n), "rss": 0})
            through[-1]["rss"] = rss.done()
        out[n] = (spread(direct), spread(through), spread(bare))
    return out
