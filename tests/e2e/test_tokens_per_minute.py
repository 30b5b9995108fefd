"""Tokens per minute, through real HTTP on every runtime: a request takes
its worst case at admission and gives back what it did not use when it is
settled, so the limit is exact under concurrency and no stricter than what
was used; answers carry OpenAI's x-ratelimit-*-tokens headers."""

import time
from concurrent.futures import ThreadPoolExecutor

import openai

from conftest import http as call


def ask(env, key, model, max_tokens, content="hi"):
    return call("POST", env.base_url + "/v1/chat/completions",
                {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]},
                headers={"authorization": f"Bearer {key}"})


def lower(headers):
    return {k.lower(): v for k, v in headers.items()}


def test_unused_tokens_are_given_back(env):
    """Each request may take ~40 tokens but uses ~4: ten in a row fit in
    100 tokens per minute only because what was not used came back."""
    model = env.make_model("mock?tokens=2")
    created = env.make_key(tpm=100)
    for i in range(10):
        r = ask(env, created["key"], model, 20)
        assert r.status_code == 200, (i, r.text)
        h = lower(r.headers)
        assert h["x-ratelimit-limit-tokens"] == "100"
        assert 0 <= int(h["x-ratelimit-remaining-tokens"]) < 100
        assert h["x-ratelimit-reset-tokens"].endswith("s")


def test_parallel_requests_never_take_more_than_the_limit(env):
    model = env.make_model("mock?tokens=5&itl_ms=20")
    created = env.make_key(tpm=200, rpm=10_000)
    client = env.client(created["key"])

    def one(_):
        try:
            r = client.chat.completions.create(model=model, max_tokens=5,
                                               messages=[{"role": "user", "content": "a b c"}])
            return r.usage.total_tokens
        except openai.RateLimitError as e:
            assert e.code == "rate_limit_exceeded" and "tokens per minute" in e.message, e.message
            assert e.response.headers["x-ratelimit-limit-tokens"] == "200"
            return 0

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=30) as pool:
        used = list(pool.map(one, range(30)))
    elapsed = time.monotonic() - started
    # What was admitted used no more than the minute's allowance plus what
    # the elapsed time replenished. (Whether any was refused depends on the
    # runtime's speed, not on the limit: the Lambda emulator on moto once
    # took long enough for the minute to refill, and all 30 fit. When fast,
    # this bound is what fails if the limit did not bite.)
    assert sum(used) <= 200 * (1 + elapsed / 60) + 1, (used, elapsed)


def test_a_request_larger_than_the_limit_is_refused_for_good(env):
    model = env.make_model("mock?tokens=2")
    created = env.make_key(tpm=10)
    r = ask(env, created["key"], model, 100)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", r.text
    assert "Request too large" in r.json()["error"]["message"]
    assert "retry-after" not in lower(r.headers)
    for bad in [0, -1, 10_000_001, "many"]:
        r = env.admin("PATCH", f"/keys/{created['id']}", {"tpm": bad})
        assert r.status_code == 400, (bad, r.text)
    r = env.admin("PATCH", f"/keys/{created['id']}", {"tpm": None})
    assert r.status_code == 200 and r.json()["tpm"] is None
    assert ask(env, created["key"], model, 100).status_code == 200


def test_a_key_limited_on_one_model_keeps_the_rest(env):
    """A key's limits on one model refuse only that model, and a request
    they refuse takes nothing from the key's own limits."""
    pricey, cheap = env.make_model("mock?tokens=2"), env.make_model("mock?tokens=2")
    created = env.make_key(rpm=3, model_limits={pricey: {"rpm": 1}})
    assert created["model_limits"] == {pricey: {"rpm": 1}}
    assert ask(env, created["key"], pricey, 5).status_code == 200
    refused = ask(env, created["key"], pricey, 5)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert f"for model {pricey}" in refused.json()["error"]["message"]
    # The key's 3 a minute: one went to the first request; the refused
    # one took nothing, so two more pass on the other model.
    assert ask(env, created["key"], cheap, 5).status_code == 200
    assert ask(env, created["key"], cheap, 5).status_code == 200
    assert ask(env, created["key"], cheap, 5).status_code == 429
    # Tokens per minute on a model.
    limited = env.make_key(model_limits={cheap: {"tpm": 10}})
    r = ask(env, limited["key"], cheap, 100)
    assert r.status_code == 429 and f"minute for model {cheap}" in r.json()["error"]["message"], r.text
    assert ask(env, limited["key"], pricey, 100).status_code == 200
    for bad in [{"m": {}}, {"m": {"rpm": 0}}, {"m": {"tpm": 10_000_001}}, {"m": {"rpm": 1, "x": 1}},
                {"x" * 300: {"rpm": 1}}]:
        r = env.admin("PATCH", f"/keys/{limited['id']}", {"model_limits": bad})
        assert r.status_code == 400, (bad, r.text)
    r = env.admin("PATCH", f"/keys/{limited['id']}", {"model_limits": {}})
    assert r.status_code == 200 and r.json()["model_limits"] == {}


def test_without_max_tokens_the_completion_is_capped_to_the_limit(env):
    """A request that sets no cap is capped at what the minute allows, so
    it is admitted and cannot take more than it was admitted for."""
    model = env.make_model("mock?tokens=500")
    created = env.make_key(tpm=60, quota=None)
    r = call("POST", env.base_url + "/v1/chat/completions",
             {"model": model, "messages": [{"role": "user", "content": "hi"}]},
             headers={"authorization": f"Bearer {created['key']}"})
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert 0 < usage["completion_tokens"] and usage["total_tokens"] <= 60, usage
