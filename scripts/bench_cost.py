"""What a proxy costs per request, for `make bench`: nginx (a plain reverse
proxy, the floor) and Portkey's gateway (a peer) as anchors beside the
gateway, each process's own CPU time per request (from /proc, so it holds
when latencies on this shared machine do not), and the system calls per
request (`strace -c`).

`make bench-cost` runs just this part (the mock direct, nginx, ModelGate and
Portkey at saturation, then the system calls) and prints it: a quick look
after a change, not BENCHMARKS.md.
"""

import os
import pathlib
import signal
import subprocess
import time

from harness import free_port, start, wait_health
from bench_load import GATEWAY_CPU, TOOLS, pinned, tree

NGINX = "nginx (one worker, `proxy_pass`, keep-alive upstream)"
PASSTHROUGH = "axum + reqwest pass-through (ModelGate's stack, no gateway)"
PORTKEY = "Portkey gateway 1.15.2 (Node)"
STRACE_RATE, STRACE_SECS = 1000, 5

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    upstream mock {{ server {upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


# What was changed for the cost per request, each step measured with `make
# bench-cost` on this machine (saturation, 10 s runs); written by hand:
# update it with the next step.
COST_STEPS = [
    "**What was changed, and what each step bought** (2026-11-30; `make bench-cost`, ModelGate's CPU per"
    " request at saturation; nginx measured 15 µs in the same runs):",
    "",
    "| step | CPU µs/request | saturation req/s | system calls/request (1,000 req/s) |",
    "|---|---|---|---|",
    "| before: glibc malloc, key and model read from SQLite on every request, leases in three b-trees"
    " | 137 | 9,647 | 29.6: `pwrite64` 9.1, `futex` 5.1, `fcntl` 3.4, `pread64` 2.7, `getrandom` 1.0 |",
    "| mimalloc as the Rust allocator | 115 | 11,160 | - |",
    "| key and model records kept per process (`MG_RECORD_CACHE_MS`, 1 s; counters never) | 95 | 13,500 |"
    " 18.6: `pread64` 2.7 -> 0.3, `futex` 5.1 -> 1.2 |",
    "| leases in one `WITHOUT ROWID` b-tree, no expiry index (migration 0011) | - | - | WAL frames per"
    " request, unbatched: ~13 -> 8.6 |",
    "| mimalloc for SQLite's C allocations too (`override`): glibc trimmed a worker's arena with `madvise`"
    " on every request, each one a TLB shootdown on the other core | 78-83 | 14,500-15,600 | `madvise`"
    " 1.0 -> 0 |",
    "",
    "The step figures come from `make bench-cost` (a fresh database, nothing else running). In the full run"
    " above the same build measured 84-121 µs (median 117): there the gateway's database already holds the"
    " earlier runs' records and PostgreSQL and Redis sit beside it; why the repeats spread that widely is not"
    " yet explained.",
    "",
    "None of these changes what a request may do or what is kept: the cache holds key and model records only;"
    " quota, budget and rate limits are still decided by the store's own statements, and every admitted"
    " request still writes its reservation and its settlement before it is answered.",
    "",
    "**What remains between ModelGate and nginx, and why** (`perf record` at saturation, after the steps):",
    "- Half of the gateway's CPU is in the kernel. Loopback TCP both ways (on loopback the sender's core also"
    " runs the receiver's softirq and wake-up: ~6%), context switches (~7%), and the WAL: every reservation"
    " and every settlement is a commit of its own at moderate load (8.6 page frames a request, a `pwrite64`"
    " for each frame's header and one for its page, plus the write lock's `fcntl`s). nginx writes nothing.",
    "- SQLite's own work is ~11%, the allocator ~6.5%, hyper ~4%, the core's logic ~3%.",
    "- The 2x-nginx target needs the durable writes off the request path (reservations in memory, or"
    " settlements answered before they are committed): that trades what a crash can lose, so it was not"
    " done. Left for later, each measured to be worth a few percent at most: a group-commit window at"
    " moderate load (fewer commits, for latency), usage records in fewer b-trees (a rebuild of a large"
    " table at upgrade), the WAL-size check's `statx` per commit, the upstream URL parsed per request (~1%),"
    " metric handles looked up per request (~0.5%).",
]


def nginx_version():
    """What `nginx -v` says it is, e.g. nginx/1.22.1."""
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    return out.strip().removeprefix("nginx version: ")


def start_nginx(upstream_url, tmp):
    """nginx from Debian on a free loopback port in front of `upstream_url`:
    its process and base URL."""
    port = free_port()
    conf = pathlib.Path(tmp) / f"nginx-{port}.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, upstream=upstream_url.removeprefix("http://")))
    proc = subprocess.Popen(["nginx", "-p", tmp, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_health(base, path="/health")
    return proc, base


def start_passthrough(bins, upstream_url):
    """modelgate-passthrough (crates/modelgate-testkit) in front of
    `upstream_url`, on the gateway's core when pinned: its process and base
    URL."""
    return start(pinned(GATEWAY_CPU, [str(bins / "modelgate-passthrough"), "--upstream", upstream_url]))


def start_portkey(upstream_url, tmp):
    """Portkey's open-source gateway (npm, pinned in scripts/portkey) with
    the mock as its OpenAI provider's custom host: its process, base URL
    and the headers that route a request there. It listens on every
    interface by itself; the preload keeps it on loopback."""
    port = free_port()
    server = TOOLS / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    preload = pathlib.Path(__file__).resolve().parent / "portkey" / "loopback.cjs"
    log = open(pathlib.Path(tmp) / "portkey.log", "w")
    proc = subprocess.Popen(["node", "--require", str(preload), str(server), f"--port={port}", "--headless"],
                            env={**os.environ, "NODE_ENV": "production"}, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    wait_health(base, path="/", timeout=60)
    headers = {"content-type": "application/json", "authorization": "Bearer unused",
               "x-portkey-provider": "openai", "x-portkey-custom-host": upstream_url + "/v1"}
    return proc, base, headers


def syscalls(pids, run_load):
    """System calls per request of the processes `pids` (all their threads)
    while `run_load()` sends a fixed rate and returns how many requests were
    answered: {syscall: calls per request}, highest first. strace slows the
    process it traces, so this counts calls, never times them."""
    out = pathlib.Path(f"/tmp/mg-strace-{os.getpid()}-{pids[0]}.txt")
    tracers = []
    for root in pids:
        for p in tree(root):
            # -f on one thread id attaches every thread of its process.
            tracers.append(subprocess.Popen(["strace", "-f", "-c", "-q", "-o", f"{out}.{p}", "-p", str(p)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1)  # attached
    answered = run_load()
    counts = {}
    for t in tracers:
        t.send_signal(signal.SIGINT)
        t.wait(timeout=30)
    for f in pathlib.Path("/tmp").glob(out.name + ".*"):
        for line in f.read_text().splitlines():
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and parts[3].isdigit() and not parts[-1].startswith("total"):
                counts[parts[-1]] = counts.get(parts[-1], 0) + int(parts[3])
        f.unlink()
    per = {k: v / max(answered, 1) for k, v in counts.items()}
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def cost_section(load, calls, names):
    """Saturation and CPU per request against nginx's, and the system calls
    per request, as BENCHMARKS.md lines."""
    base = load[(NGINX, None)]
    lines = ["## Cost per request against a plain reverse proxy", "",
             "The same non-streaming chat through each proxy to the same mock, oha as in the load runs above"
             " (closed loop, saturation). CPU per request is the proxy process's own user + system time (every"
             " thread, and child processes: nginx's worker; PostgreSQL's backends and Redis for the PostgreSQL"
             " row) over the requests answered, from /proc: it holds when latencies on this shared machine do"
             " not. nginx runs with its access log off, one worker, keep-alive to the upstream; Portkey with no"
             " auth, cache or logging configured. The pass-through (`modelgate-passthrough`) is the stack the"
             " native server is built on (axum on hyper, a pooled reqwest client, mimalloc, tokio's runtime)"
             " forwarding each request and its buffered answer and doing nothing else: what the stack costs,"
             " apart from what the gateway does.", "",
             "| target | saturation req/s | % of nginx | CPU µs/request | x nginx's CPU | p50 / p99 ms |",
             "|---|---|---|---|---|---|"]
    for name in names:
        r = load[(name, None)]
        share = 100 * r["rps"][0] / base["rps"][0]
        ratio = r["cpu_us"][0] / base["cpu_us"][0]
        lines.append(f"| {name} | {r['rps'][0]:.0f} | {share:.0f}% | {r['cpu_us'][0]:.0f}"
                     f" [{r['cpu_us'][1]:.0f}-{r['cpu_us'][2]:.0f}] | {ratio:.1f} |"
                     f" {r['p50'][0]:.2f} / {r['p99'][0]:.2f} |")
    top = sorted({k for per in calls.values() for k in list(per)[:8]},
                 key=lambda k: -max(per.get(k, 0) for per in calls.values()))
    lines += ["", f"System calls per request (`strace -f -c` on the proxy's threads at {STRACE_RATE} req/s for"
              f" {STRACE_SECS} s; strace slows what it traces, so only the counts are kept):", "",
              "| syscall | " + " | ".join(calls) + " |", "|---|" + "---|" * len(calls)]
    for k in top:
        lines.append(f"| `{k}` | " + " | ".join(f"{per.get(k, 0):.2f}" for per in calls.values()) + " |")
    lines.append("| **all** | " + " | ".join(f"**{sum(per.values()):.1f}**" for per in calls.values()) + " |")
    return lines
