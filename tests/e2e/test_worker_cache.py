"""Worker only: key records are cached in KV for at most 60 s."""

import os
import subprocess
import time

import openai
import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(os.environ.get("MG_RUNTIME") != "worker", reason="the KV key cache is the Worker's")


def d1(env, sql):
    cmd = f"{os.environ['MG_WRANGLER']} d1 execute DB --local --persist-to {env.worker_state} --command \"{sql}\""
    subprocess.run(cmd, shell=True, cwd=ROOT, check=True, capture_output=True, stdin=subprocess.DEVNULL)


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
