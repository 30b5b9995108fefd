"""The field's method (Busbar's, GetBusbar/benchmarking) for `make bench`:
what a gateway adds at concurrency 1, the load LLM clients really make.

wrk keeps one connection with one request in flight for a run (closed
loop); the added latency is the gateway's percentile minus the direct
call's in the same round, and the proxy's CPU per request comes from
/proc. `make bench-c1` runs just this part and prints it.
"""

import json
import os
import pathlib
import subprocess

from bench_load import LOAD_CPU, cpu_seconds, cpu_times, oha, pinned, spread, stolen_since

LUA = pathlib.Path(__file__).resolve().parent / "wrk-post.lua"
C1_SECS = int(os.environ.get("MG_BENCH_C1_SECS", "10"))
C1_ROUNDS = int(os.environ.get("MG_BENCH_REPEATS", "3"))

# Busbar's published added p99 at concurrency 1 (gateway p99 minus direct
# p99, 4 dedicated cores; another machine): for the peers that do not run here.
BUSBAR_PUBLISHED = [("LiteLLM's Rust gateway", 0.107), ("Busbar", 0.116), ("agentgateway", 0.186),
                    ("Helicone AI gateway", 0.444), ("Bifrost", 0.939), ("Kong AI gateway", 1.3),
                    ("Portkey", 3.3), ("LiteLLM (Python)", 8.0), ("TensorZero", 41.0)]


# What was tried at concurrency 1 and what each bought, measured side by
# side (wrk -c1, three rounds of 8 s; saturation: oha, 50 connections, three
# rounds of 10 s); written by hand: update it with the next step.
C1_STEPS = [
    "**What was changed at concurrency 1, and what it bought** (2026-12-03, each side by side with the build"
    " before it in the same rounds):",
    "",
    "| change | p99 ms | CPU µs/request | at saturation |",
    "|---|---|---|---|",
    "| new databases get 1 KiB pages instead of SQLite's 4 KiB: a request's two commits write ~8 pages to the"
    " WAL whatever their size, ~33 KB with 4 KiB pages for a few hundred bytes of rows, and the checkpoint"
    " thread's `fsync` of that WAL (every 100 ms, ~2 ms each) stalled the requests' own WAL writes; the WAL"
    " still restarts every 4 MiB | 1.38 -> 0.87 | 263 -> 254 | no loss: 12,400 against 11,600 req/s, 92"
    " against 96 µs (a slow hour of the machine: both half the usual) |",
    "| tried, not kept: the WAL restarted less often (6,000 and 16,000 frames instead of 1,000) | 0.92 -> 0.86"
    " (noise); with 16,000 frames of 4 KiB the WAL passed its 64 MB bound and every truncation stalled: 23 |"
    " - | - |",
    "| measured, not a change: the database on tmpfs (no durability) | 0.45 | 250 | - |",
    "| tried, not kept: one worker thread instead of two (`TOKIO_WORKER_THREADS=1`), the limit of a"
    " thread-per-core design at one connection (the request, its upstream connection and its commits all on"
    " one thread): context switches 4.8 -> 2.0 a request | 1.18 -> 1.24, p50 0.37 -> 0.38 (unchanged) | 307"
    " -> 267 (-13%) | one core: 7,000 against 13,500 req/s |",
    "",
    "**Where the time goes at concurrency 1** (`perf record` with DWARF call graphs, 3 s at one connection,"
    " ~290 µs of CPU a request): the kernel 53% (the loopback sends ~15%, since on loopback the sender's core"
    " runs the receiver's TCP and wakes it; the gateway's own sleeps and wake-ups ~25%; SQLite's file writes"
    " and locks ~14%), SQLite's own code 11.5%, the HTTP stack (hyper, axum, tokio) ~12%, the allocator and"
    " copies ~6%, the gateway's logic ~5%. By phase: the two commits ~28% of it (the reservation 11%, the"
    " settlement 18%: 17.5 `pwrite64` and 12 `fcntl` a request, every commit alone at this load), the"
    " client's connection ~16%, the upstream's ~12%.",
    "",
    "**What remains, and why.** At one request in flight every step of every request finds the caches cold"
    " and its thread asleep, so each microsecond of work at saturation costs several here: the pass-through"
    " (the stack alone) uses 77 µs a request at one connection against 17 at saturation, nginx 49 against 13,"
    " ModelGate ~290 against 41. The two commits a request are its own part: the reservation must be durable"
    " before the upstream is called and the settlement before the answer is sent (what a crash may lose, in"
    " the README), and with nothing to group them with at this load each is a transaction of its own, ~80 µs"
    " of CPU together here, as much as the 2x-nginx budget (~100 µs) leaves after the stack's own 77. The"
    " added p99 is the disk's: on tmpfs it is +0.32 ms, on this virtual disk the checkpoints' `fsync`s still"
    " stall a WAL write now and then. Neither target falls to scheduling: one thread instead of two took the"
    " hand-offs out and left p50 and p99 where they were.",
]


def wrk(url, headers, body, pids, secs=C1_SECS, connections=1):
    """One closed-loop wrk run: latencies in ms (p50, p90, p99, p99.9,
    max), requests a second, non-2xx or failed requests, the CPU time per
    request of `pids` and the share of CPU stolen."""
    env = {**os.environ, "WRK_BODY": body.decode(), "WRK_HEADERS": "\n".join(f"{k}: {v}" for k, v in headers.items())}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{secs}s", "-s", str(LUA), url]
    start, cpu = cpu_times(), cpu_seconds(pids)
    out = subprocess.run(pinned(LOAD_CPU, cmd), capture_output=True, text=True, check=True, env=env).stdout
    stolen, cpu = stolen_since(start), cpu_seconds(pids) - cpu
    r = json.loads(out.strip().splitlines()[-1])
    ms = lambda us: us / 1000
    ok = r["requests"] - r["errors"] - r["status"]
    return {"rps": r["requests"] / (r["duration_us"] / 1e6), "p50": ms(r["p50"]), "p90": ms(r["p90"]),
            "p99": ms(r["p99"]), "p999": ms(r["p999"]), "max": ms(r["max"]), "errors": r["errors"] + r["status"],
            "cpu_us": cpu * 1e6 / max(ok, 1), "stolen": stolen}


def concurrency_one(targets, rounds=C1_ROUNDS):
    """targets: name -> (url, headers, body, pids). Rounds interleave the
    targets; each name's median round with the lowest and highest."""
    for url, headers, body, pids in targets.values():
        wrk(url, headers, body, pids, secs=1)  # warm-up: connections, caches
    runs = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (url, headers, body, pids) in targets.items():
            runs[name].append(wrk(url, headers, body, pids))
    return {name: spread(r) for name, r in runs.items()}


def c1_section(phases, direct, anchor):
    """The table, as BENCHMARKS.md lines. `phases`: results of
    concurrency_one(), each with its own `direct` row: a target's added
    latency is over the direct call of its own phase, and its CPU is put
    against `anchor`'s (nginx, in the first phase)."""
    a = phases[0][anchor]
    lines = ["## Concurrency 1 (the field's method)", "",
             "Busbar's method (GetBusbar/benchmarking): one connection, one request in flight, non-streaming chat"
             f" to the mock (8 completion tokens), wrk for {C1_SECS} s a round, {C1_ROUNDS} rounds interleaved across"
             " the targets; added = the target's percentile minus the direct call's in the same rounds (the peers"
             " run in rounds of their own, beside the direct call again, as they share the CPUs). Medians of the"
             " rounds, lowest and highest in brackets. CPU per request is the proxy's own (every thread and child"
             " process; for the PostgreSQL + Redis row, PostgreSQL's and Redis's too), from /proc.", "",
             "| target | req/s | p50 ms | p99 ms | p99.9 ms | max ms | added p50 / p99 ms | CPU µs/request |"
             " x nginx's CPU | CPU stolen % |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, results in enumerate(phases):
        d = results[direct]
        for name, r in results.items():
            if name == direct and i > 0:
                continue
            added = "-" if name == direct else f"+{r['p50'][0] - d['p50'][0]:.3f} / +{r['p99'][0] - d['p99'][0]:.3f}"
            ratio = "-" if name == direct else f"{r['cpu_us'][0] / a['cpu_us'][0]:.1f}"
            lines.append(f"| {name} | {r['rps'][0]:.0f} | {r['p50'][0]:.3f} | {r['p99'][0]:.3f}"
                         f" [{r['p99'][1]:.3f}-{r['p99'][2]:.3f}] | {r['p999'][0]:.3f} | {r['max'][0]:.2f}"
                         f" [{r['max'][1]:.2f}-{r['max'][2]:.2f}] | {added} | {r['cpu_us'][0]:.0f}"
                         f" [{r['cpu_us'][1]:.0f}-{r['cpu_us'][2]:.0f}] | {ratio} | {r['stolen'][0]:.0f} |")
    lines += ["", "Busbar's published added p99 at concurrency 1, for the gateways that do not run here (their"
              " machine, 4 dedicated cores: **another machine**, for placing, not comparing to the digit): "
              + ", ".join(f"{n} {v:g} ms" for n, v in BUSBAR_PUBLISHED) + "." + placing(phases[0], direct),
              "", *C1_STEPS]
    return lines


def placing(results, direct, gateway="ModelGate (native, SQLite)"):
    """Where ModelGate's added p99 would sit among Busbar's figures."""
    added = results[gateway]["p99"][0] - results[direct]["p99"][0]
    below = [n for n, v in BUSBAR_PUBLISHED if v <= added]
    above = [n for n, v in BUSBAR_PUBLISHED if v > added]
    where = (f" after {below[-1]}" if below else " first") + (f" and before {above[0]}" if above else "")
    return f" ModelGate's added p99 here (+{added:.3f} ms) would place it{where} in that table."


# The RPS ceiling: fixed rates (open loop, latency counted from when each
# request was due), doubled from CEILING_START until one fails Busbar's bar
# (p99 under 1 s, under 0.1 % errors, the rate achieved), then raised from
# the last that passed by a fifth at a time.
CEILING_START, CEILING_SECS = 25, 5


def ceiling(url, headers, body, pids):
    """The highest rate a target sustained, with that run's numbers."""

    def passes(rate):
        r = oha(url, headers, body, rate=rate, secs=CEILING_SECS, pids=pids)
        sent = r["ok"] + r["errors"]
        return r["p99"] < 1000 and r["errors"] <= 0.001 * max(sent, 1) and r["rps"] >= 0.95 * rate, r

    best = {"rate": 0, "rps": 0, "p50": float("nan"), "p99": float("nan"), "cpu_us": float("nan")}
    for step in (2, 1.2):
        rate = int(best["rate"] * step) if best["rate"] else CEILING_START
        while True:
            ok, r = passes(rate)
            if not ok:
                break
            best, rate = {"rate": rate, **r}, int(rate * step)
    return best


# Sustained load on a slow upstream: the mock answers after 20 ms, as a
# model's first token might, with this many requests in flight.
SUSTAINED_MS, SUSTAINED_CONNECTIONS = 20, 256


def sustained(targets):
    """targets: name -> (url, headers, body, pids), the body naming the
    20 ms upstream. Closed loop at SUSTAINED_CONNECTIONS: rounds
    interleaved, medians with spread."""
    runs = {name: [] for name in targets}
    for _ in range(C1_ROUNDS):
        for name, (url, headers, body, pids) in targets.items():
            runs[name].append(oha(url, headers, body, pids=pids, connections=SUSTAINED_CONNECTIONS))
    return {name: spread(r) for name, r in runs.items()}


def field_section(ceilings, slow, direct):
    """The RPS ceiling and the sustained rate on a 20 ms upstream, as
    BENCHMARKS.md lines."""
    lines = ["", "**RPS ceiling**: the highest fixed rate (oha, open loop,"
             f" {CEILING_SECS} s a step, from {CEILING_START}"
             " req/s doubled until a step fails, then up by a fifth from the last that passed) with p99 under 1 s,"
             " under 0.1% errors and the rate achieved;"
             " the same machine as everything else here (gateway, upstream and load share the 2 cores).", "",
             "| target | ceiling req/s | p50 / p99 ms there | CPU µs/request there |", "|---|---|---|---|"]
    for name, r in ceilings.items():
        lines.append(f"| {name} | {r['rate']} | {r['p50']:.2f} / {r['p99']:.2f} | {r['cpu_us']:.0f} |")
    d = slow[direct]
    lines += ["", f"**Sustained on a {SUSTAINED_MS} ms upstream**: {SUSTAINED_CONNECTIONS} connections in a closed loop"
              f" (at most {SUSTAINED_CONNECTIONS * 1000 // SUSTAINED_MS:,} req/s if nothing else took time), the mock"
              f" answering each request after {SUSTAINED_MS} ms.", "",
              "| target | req/s | p50 / p99 ms | added p50 / p99 ms | errors | CPU µs/request |",
              "|---|---|---|---|---|---|"]
    for name, r in slow.items():
        added = "-" if name == direct else f"+{r['p50'][0] - d['p50'][0]:.2f} / +{r['p99'][0] - d['p99'][0]:.2f}"
        lines.append(f"| {name} | {r['rps'][0]:.0f} [{r['rps'][1]:.0f}-{r['rps'][2]:.0f}] | {r['p50'][0]:.2f} /"
                     f" {r['p99'][0]:.2f} | {added} | {r['errors'][0]:.0f} | {r['cpu_us'][0]:.0f} |")
    return lines
