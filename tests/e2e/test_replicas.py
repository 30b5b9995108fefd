"""Native replicas: three `modelgate` processes sharing one PostgreSQL (and
one Redis with MG_NATIVE_STORE=postgres+redis), or one DynamoDB table and one
Redis (dynamodb+redis), keep every limit exact, as one process does; run when
the suite's native server is on a shared store."""

import json
import os
import time
import urllib.request

import openai
import pytest

from exactness import assert_quota_held, assert_rpm_held, spent
from harness import start_gateway, stop, wait_health

RECORD_CACHE_S = 1.0  # MG_RECORD_CACHE_MS's default

pytestmark = pytest.mark.skipif(
    os.environ.get("MG_RUNTIME", "native") != "native"
    or os.environ.get("MG_NATIVE_STORE", "sqlite") == "sqlite",
    reason="native replicas on a shared store (MG_NATIVE_STORE)")


@pytest.fixture(scope="module")
def replicas(env):
    """The suite's gateway and two more processes on its settings: their
    base URLs."""
    settings, tmp, bin_dir = env.native
    procs, urls = [], [env.base_url]
    try:
        for n in (2, 3):
            with open(f"{tmp}/replica-{n}.log", "w") as log:
                proc, url, _ = start_gateway([str(bin_dir / "modelgate")], settings, log)
            procs.append(proc)
            urls.append(url)
            wait_health(url, timeout=120)
        yield urls
    finally:
        for p in procs:
            stop(p)


def clients(urls, key):
    return [openai.OpenAI(base_url=u + "/v1", api_key=key, max_retries=0, timeout=120) for u in urls]


def served(env):
    return json.load(urllib.request.urlopen(env.mock_url + "/_mock/stats"))["requests"]


def test_three_replicas_admit_exactly_rpm(env, replicas):
    assert_rpm_held(clients(replicas, env.make_key(rpm=10)["key"]), env.make_model("mock?tokens=1"), 10)


def test_three_replicas_never_overspend_a_quota(env, replicas):
    created = env.make_key(quota=300, rpm=1000)
    charged = spent(clients(replicas, created["key"]), env.make_model("mock?tokens=10&itl_ms=2"))
    assert_quota_held(env, created["id"], charged, 300)


def test_usage_records_are_what_the_upstream_served(env, replicas):
    created = env.make_key(rpm=1000)
    model = env.make_model("mock?tokens=3")
    started, before = int(time.time() * 1000), served(env)
    usage = spent(clients(replicas, created["key"]), model, n=30)
    assert served(env) - before == 30 and all(usage)
    report = env.admin("GET", f"/usage?key_id={created['id']}&from={started - 1000}").json()
    assert sum(r["requests"] for r in report["data"]) == 30, report
    recorded = sum(r["prompt_tokens"] + r["completion_tokens"] for r in report["data"])
    assert recorded == sum(usage), report
    key = env.admin("GET", f"/keys/{created['id']}").json()
    assert key["quota_used"] == sum(usage) and key["quota_reserved"] == 0


def test_an_admin_change_holds_at_once_where_made_and_on_every_other_replica_within_a_second(env, replicas):
    """Each replica keeps a key record it read for MG_RECORD_CACHE_MS (1 s
    by default): the replica that revoked the key refuses it at once, the
    others once their copy has expired."""
    created = env.make_key()
    model = env.make_model("mock?tokens=1")
    every = clients(replicas, created["key"])
    for c in every:
        c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert env.admin("DELETE", f"/keys/{created['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        every[0].chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    # Every copy was read before the revocation, so has expired by now. (The
    # replicas are other processes on the system clock; this wait is a lower
    # bound, so a slower machine only waits further past it.)
    time.sleep(RECORD_CACHE_S)
    for c in every:
        with pytest.raises(openai.AuthenticationError):
            c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
