"""Limits that hold under concurrency, through real HTTP."""

from concurrent.futures import ThreadPoolExecutor

import openai


def test_fifty_parallel_requests_on_rpm_ten_admit_exactly_ten(env):
    client = env.client(env.make_key(rpm=10)["key"])
    model = env.make_model("mock?tokens=1")

    def one(_):
        try:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            return "ok"
        except openai.RateLimitError:
            return "limited"

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    assert results.count("ok") == 10
    assert results.count("limited") == 40


def test_parallel_requests_never_overspend_a_quota(env):
    created = env.make_key(quota=300, rpm=1000)
    client = env.client(created["key"])
    model = env.make_model("mock?tokens=10&itl_ms=2")

    def one(_):
        try:
            r = client.chat.completions.create(model=model, max_tokens=10,
                                               messages=[{"role": "user", "content": "a b c"}])
            return r.usage.total_tokens
        except openai.RateLimitError as e:
            assert e.code == "insufficient_quota"
            return 0

    with ThreadPoolExecutor(max_workers=30) as pool:
        spent = list(pool.map(one, range(30)))
    key = env.admin("GET", f"/keys/{created['id']}").json()
    assert key["quota_reserved"] == 0
    assert key["quota_used"] == sum(spent)
    assert key["quota_used"] <= 300
    assert spent.count(0) > 0, "some requests were refused"
