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
PASSTHROUGH = "axum + hyper client pass-through (ModelGate's stack, no gateway)"
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
    " request at saturation; nginx measured 14-15 µs in the same runs):",
    "",
    "| step | CPU µs/request | saturation req/s | system calls/request |",
    "|---|---|---|---|",
    "| before: glibc malloc, key and model read from SQLite on every request, leases in three b-trees"
    " | 137 | 9,647 | 29.6 at 1,000 req/s: `pwrite64` 9.1, `futex` 5.1, `fcntl` 3.4, `pread64` 2.7,"
    " `getrandom` 1.0 |",
    "| mimalloc as the Rust allocator | 115 | 11,160 | - |",
    "| key and model records kept per process (`MG_RECORD_CACHE_MS`, 1 s; counters never) | 95 | 13,500 |"
    " 18.6: `pread64` 2.7 -> 0.3, `futex` 5.1 -> 1.2 |",
    "| leases in one `WITHOUT ROWID` b-tree, no expiry index (migration 0011) | - | - | WAL frames per"
    " request, unbatched: ~13 -> 8.6 |",
    "| mimalloc for SQLite's C allocations too (`override`): glibc trimmed a worker's arena with `madvise`"
    " on every request, each one a TLB shootdown on the other core | 78-83 | 14,500-15,600 | `madvise`"
    " 1.0 -> 0 |",
    "| group commit on the requests' own threads: under load (writes less than 50 µs apart on average) the"
    " first write to find no batch forming yields once, the writes of the requests ready meanwhile join"
    " it, one transaction for all (before, a request that found the connection free committed alone, so"
    " at saturation almost every write was a commit of its own); at lower rates it commits at once, as"
    " before | 67 | 17,625 | at saturation (`perf stat`): ~15 writes a commit, `pwrite64` 8.3 -> 2.3,"
    " `fcntl` 5.0 -> 0.8 |",
    "| upstream URLs parsed once per URI (reqwest re-parsed the core's URI as a URL, IDNA check included);"
    " a buffered answer's choices checked to be a list and skipped, not built as a JSON tree | 58 | 19,890 |"
    " - |",
    "| OS randomness fetched 256 bytes at a time per thread (handed out once, wiped); callers glance at the"
    " WAL's size at most once a millisecond (the writer thread still looks every time) | 55-56 against 56-57"
    " side by side (three rounds; a `make bench-cost` run had one disturbed repeat) | 20,900-21,100 against"
    " 20,600-20,900 | `getrandom` 1.0 -> 0, `statx` 0.67 -> 0.53 |",
    "| a busy batch's leader yields twice, not once: the second pass of the scheduler brings in the writes"
    " of the requests the first one woke (below ~10,000 requests a second it still commits at once) |"
    " 54-56 against 56-59 side by side (three rounds), p99 5.1 against 5.5-5.7 ms | 20,000-21,000 against"
    " 19,900-20,500 | - |",
    "| the upstream client is hyper-util's pooled client itself, not reqwest: the core builds the request and"
    " follows no redirect, so reqwest's layers (the URI turned into a URL and back, default headers, its retry"
    " and redirect services, boxed futures) did nothing for it; `https` upstreams keep rustls with the"
    " system's roots, and the egress resolver stays | 48-50 against 53-56 side by side (four rounds) |"
    " 21,900-22,900 against 20,100-21,500 | - |",
    "| (2026-12-01) the reservation reads its grant back by the key's primary key instead of `RETURNING`"
    " (SQLite runs an UPDATE's `RETURNING` through a temporary table; D1 keeps it, as one round trip), and a"
    " batch takes its statements from rusqlite's cache once, not once per job (the cache hashes and compares"
    " the whole SQL text, over a kilobyte for the reservation). The statements alone, batches of 15:"
    " 9.1 -> 8.2 -> 7.2 µs a request; SQLite's share of the gateway's CPU (`perf`) 24% -> 22% | each step"
    " side by side with the build before it: 45.3-48.9 against 46.3-47.6 (median 46.3 against 47.3, six"
    " rounds), then 44.5-45.8 against 44.9-47.2 (five calm rounds of six) | 22,600-24,000 against"
    " 23,000-23,600, then 23,800-24,500 against 23,100-24,300 | - |",
    "| (2026-12-01) metric handles kept once registered (the Prometheus recorder builds and clones a label"
    " set's whole key on every registration, several a request), found again by a hash of the borrowed labels;"
    " the rate-limit header names are constants, no longer formatted and parsed for every answer. `perf`:"
    " metrics' share of the gateway's CPU 3.5% -> 2.3%, the headers' 0.95% -> 0.7% | ~0.7 µs a request by the"
    " profile, below what side-by-side rounds resolve here (the calm ones: 43.9-47.7 against 44.7-48.4) | - | - |",
    "",
    "The step figures come from `make bench-cost` (a fresh database, nothing else running); the full run above"
    " measures the same build with the earlier runs' records in its database and PostgreSQL and Redis"
    " beside it, and has spread wider than bench-cost's repeats.",
    "",
    "None of these changes what a request may do or what is kept: the cache holds key and model records only;"
    " quota, budget and rate limits are still decided by the store's own statements, and every admitted"
    " request still has its reservation and then its settlement committed before it is answered (a batch"
    " answers each of its requests only once it is committed).",
    "",
    "**What remains between ModelGate and nginx, and why** (`perf record -g`, frame pointers, at saturation,"
    " after the steps):",
    "- The stack alone: with reqwest the pass-through measured 22-26 µs a request; with hyper-util's client"
    " (what the gateway now uses) 19-21 in the same rounds, and a bare hyper server in front of it 17-18"
    " (axum's routing and body types cost the rest). Thread per core was measured too (2026-11-30, side by"
    " side): one current-thread runtime per CPU, each with its own `SO_REUSEPORT` listener and its own"
    " upstream pool: on the gateway 55-56 µs a request against 58-59 (the three calm rounds of five), on the"
    " pass-through within the rounds' spread. It was not adopted: a connection is then served by one core for"
    " its life, so a client or balancer sending everything over a few keep-alive or HTTP/2 connections would"
    " be held to one core of the two. (mimalloc v2 against the v3 in use: no difference, five rounds.)",
    "- The gateway's own work is the other ~24 µs (41 against the pass-through's 17 in this run; 47 against"
    " 19 in the run before it the same day, on code that differed only by the sub-microsecond steps above:"
    " the machine's speed moves both). SQLite"
    " is ~22% of the gateway's CPU (six statements and two commits a request, batched; the commits' WAL"
    " writes ~6%), the writer and checkpoint threads ~5%, the core's logic (body parse, routing, limits, the"
    " answer's check, headers) ~10%, metrics ~2.3% (recording the samples, now that the handles are kept: see"
    " the steps); the request id's `getrandom` (~1%) is gone.",
    "- Taking the writes off the request path (reservations only in memory, or answers before commits)"
    " would halve SQLite's share but lose what a crash may not lose (the `lease_expired` record and quota"
    " release of a request in flight), so it was not done. At moderate load each write is still a commit"
    " of its own (8.5 `pwrite64` a request at 1,000 req/s): nothing is waiting to join it, and waiting for"
    " company would add latency.",
    "",
    "**Stores shared by replicas** (2026-11-30, side by side, not part of `make bench`): where one store is"
    " both the limiter and the counters, a request's RPM step now travels with its quota reservation. On"
    " PostgreSQL alone (`MG_DATABASE_URL` without Redis) that is one statement instead of two, so one"
    " round trip and one commit fewer per request. Three rounds each: at saturation 5,302-6,095 req/s"
    " against 4,417-5,621, the gateway 95-102 µs of CPU a request against 112-156 and PostgreSQL 178-211"
    " against 186-228; at 1,000 req/s the gateway 211-221 µs against 230-231, PostgreSQL 262-301 against"
    " 291-302, p50 0.60-0.63 ms against 0.64-0.66. On PostgreSQL + Redis it is one Redis script instead"
    " of two: at 1,000 req/s Redis used 89-101 µs of CPU a request against 105-129, the gateway 229-252"
    " against 240-301, p50 0.62-0.71 ms against 0.64-0.81; at saturation the two moved within each"
    " other's noise (6,554-7,999 req/s against 5,992-7,930). On the Worker it is one D1 round trip fewer"
    " (see *Worker* below).",
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
             " native server is built on (axum on hyper, hyper-util's pooled client, mimalloc, tokio's runtime)"
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
