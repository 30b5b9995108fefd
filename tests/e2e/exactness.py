"""Concurrency checks shared by every runtime's exactness tests: requests
spread round-robin over `clients` (one gateway, or several instances of it)."""

import time
from concurrent.futures import ThreadPoolExecutor

import openai


def assert_rpm_held(clients, model, rpm, n=50):
    """`n` parallel requests on a key of `rpm` requests a minute admit the
    minute's allowance, plus what the time they took brought back (one
    every 60/rpm seconds: a slow or busy machine may see one more), and no
    more."""
    started = time.monotonic()
    n_admitted = admitted(clients, model, n)
    back = int((time.monotonic() - started) // (60 / rpm))
    assert rpm <= n_admitted <= rpm + back, (n_admitted, back)


def admitted(clients, model, n=50):
    """How many of `n` parallel requests were let through (the rest: 429)."""

    def one(i):
        try:
            clients[i % len(clients)].chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            return 1
        except openai.RateLimitError as e:
            assert e.code == "rate_limit_exceeded"
            return 0

    with ThreadPoolExecutor(max_workers=n) as pool:
        return sum(pool.map(one, range(n)))


def spent(clients, model, n=30):
    """Tokens each of `n` parallel requests was charged (0: refused for quota)."""

    def one(i):
        try:
            r = clients[i % len(clients)].chat.completions.create(
                model=model, max_tokens=10, messages=[{"role": "user", "content": "a b c"}])
            return r.usage.total_tokens
        except openai.RateLimitError as e:
            assert e.code == "insufficient_quota"
            return 0

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def assert_quota_held(env, key_id, charged, quota):
    key = env.admin("GET", f"/keys/{key_id}").json()
    assert key["quota_reserved"] == 0, "every reservation released"
    assert key["quota_used"] == sum(charged) <= quota
    assert charged.count(0) > 0, "some requests were refused"
