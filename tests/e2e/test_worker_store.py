"""Worker only: key records are cached in KV for at most 60 s; D1 errors."""

import json
import os
import time
import urllib.request

import openai
import pytest

from harness import d1_execute

pytestmark = pytest.mark.skipif(os.environ.get("MG_RUNTIME") != "worker", reason="the Worker's D1 and KV")


def d1(env, sql):
    d1_execute(env.worker_state, sql)


def test_a_key_changed_behind_the_gateway_is_refused_within_the_cache_bound(env):
    created = env.make_key()
    client = env.client(created["key"])
    model = env.make_model("mock?tokens=1")
    ask = lambda: client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    ask()  # the key record is now cached
    changed = time.monotonic()
    d1(env, f"UPDATE api_keys SET status = 'disabled' WHERE id = '{created['id']}'")
    ask()  # served from the cache: D1 says disabled, KV still says active
    while True:
        try:
            ask()
        except openai.AuthenticationError as e:
            assert e.code == "api_key_disabled"
            break
        assert time.monotonic() - changed < 75, "still accepted past the 60 s cache bound"
        time.sleep(2)
    assert time.monotonic() - changed >= 55, "refused before the cache expired: the cache was not used"


def test_d1_errors_are_503s_before_any_upstream_call_and_the_worker_recovers(env):
    created = env.make_key(quota=1000)
    client = env.client(created["key"])
    model = env.make_model("mock?tokens=2")
    ask = lambda: client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    served = lambda: json.load(urllib.request.urlopen(env.mock_url + "/_mock/stats"))["requests"]
    ask()
    before = served()
    d1(env, "ALTER TABLE api_keys RENAME TO api_keys_away")
    try:
        with pytest.raises(openai.InternalServerError) as e:
            ask()
        assert e.value.status_code == 503
        assert e.value.code == "service_unavailable"
    finally:
        d1(env, "ALTER TABLE api_keys_away RENAME TO api_keys")
    assert served() == before, "no upstream call without the quota reservation"
    assert ask().choices[0].message.content, "serving again once D1 answers"
