"""`/metrics` against the real thing: `promtool check metrics` passes on
what the native server serves, and Debian's Prometheus, scraping it with
the admin key, answers PromQL with the requests and tokens this test
produced. The Worker serves its round trips to D1 and KV there (what it
waits on and is billed by); the Lambda does not serve it (its log lines
carry the figures)."""

import os
import pathlib
import subprocess
import tempfile
import time
import urllib.parse

from conftest import http as call
from harness import free_port, round_trips

RUNTIME = os.environ.get("MG_RUNTIME", "native")


def scrape(env):
    return call("GET", env.base_url + "/metrics", headers={"authorization": f"Bearer {env.admin_key}"})


def query(base, promql):
    r = call("GET", f"{base}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert r.status_code == 200, r.text
    result = r.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def scraped_round_trips(env):
    r = scrape(env)
    assert r.status_code == 200, r.text
    check = subprocess.run(["promtool", "check", "metrics"], input=r.text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return round_trips(r.text)


def test_worker_counts_its_round_trips_to_d1_and_kv(env):
    if RUNTIME != "worker":
        return
    assert call("GET", env.base_url + "/metrics").status_code == 401
    client = env.client(env.make_key(rpm=10_000, quota=10**9)["key"])
    model = env.make_model()
    ask = dict(model=model, messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(**ask)  # the key's record is now in KV
    before = scraped_round_trips(env)
    n = 6
    for _ in range(n):
        client.chat.completions.create(**ask)
    after = scraped_round_trips(env)
    trips = {k: after[k] - before[k] for k in after}
    # Per request on D1: the RPM step with the reservation (one batch) and
    # the settlement (one batch). The key (from KV) and the model (from D1)
    # are read again only when the isolate's record cache (1 s) has let
    # them go, together (so the model's reads are at most one more than
    # KV's); the lease sweep and the stored-response purge may each fall
    # due.
    assert trips["kv write"] == 0 and trips["kv read"] <= n, trips
    assert 2 * n <= trips["d1 query"] <= 2 * n + trips["kv read"] + 3, trips


def test_prometheus_scrapes_what_was_served(env):
    if RUNTIME != "native":
        assert scrape(env).status_code == (200 if RUNTIME == "worker" else 404)
        return
    assert call("GET", env.base_url + "/metrics").status_code == 401
    # 1 USD per million input tokens, 2 per million output tokens.
    model = env.make_model("mock?tokens=5&cached=1", prices={"input": 1, "cached_input": 0.5, "output": 2})
    client = env.client(env.make_key(rpm=10_000, quota=10**9)["key"])
    cost = 0
    for _ in range(7):
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "one two three"}])
        cost += (r.usage.prompt_tokens - 1) * 1000 + 500 + r.usage.completion_tokens * 2000
    text = scrape(env).text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f'modelgate_cost_nanodollars_total{{gen_ai_request_model="{model}"}} {cost}' in text, text
    assert 'modelgate_gateway_overhead_seconds_bucket{phase="admit",le="1"}' in text
    # The metrics listener serves the same without a key, and nothing else.
    open_text = call("GET", env.metrics_url).text
    assert f'modelgate_cost_nanodollars_total{{gen_ai_request_model="{model}"}} {cost}' in open_text
    assert call("GET", env.metrics_url.replace("/metrics", "/v1/models")).status_code == 404

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="mg-prom-"))
    target = urllib.parse.urlsplit(env.base_url).netloc
    (tmp / "prometheus.yml").write_text(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: modelgate
    authorization:
      credentials: {env.admin_key}
    static_configs:
      - targets: ["{target}"]
""")
    port = free_port()
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "prometheus.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        labels = f'gen_ai_request_model="{model}",gen_ai_token_type="output"'
        requests = tokens = None
        deadline = time.time() + 60
        while time.time() < deadline and (requests, tokens) != (7, 35):
            time.sleep(0.5)
            try:
                requests = query(base, f"sum(gen_ai_client_token_usage_count{{{labels}}})")
                tokens = query(base, f"sum(gen_ai_client_token_usage_sum{{{labels}}})")
            except OSError:
                continue
        assert (requests, tokens) == (7, 35), (requests, tokens, (tmp / "prometheus.log").read_text()[-2000:])
        cached = query(base, f'sum(gen_ai_client_token_usage_sum{{gen_ai_request_model="{model}",'
                             f'gen_ai_token_type="cached_input"}})')
        assert cached == 7
        assert query(base, f'sum(modelgate_cost_nanodollars_total{{gen_ai_request_model="{model}"}}) / 1e9') \
            == cost / 1e9
        assert query(base, 'up{job="modelgate"}') == 1
    finally:
        prom.terminate()
        prom.wait(timeout=30)
