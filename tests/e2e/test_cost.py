"""Cost: a priced model's usage records carry what each request cost, with
cached prompt tokens priced as cached, and a deployment's own prices win
over its model's; on every runtime and store."""

import time

# USD per million tokens, large so that a few tokens cost whole micro-dollars.
MODEL_PRICES = {"input": 1000, "cached_input": 100, "output": 2000}
DEPLOYMENT_PRICES = {"input": 3000, "output": 5000}


def nanos(prices, prompt, cached, completion):
    """The cost in nano-dollars (a price of 1 USD/M is 1,000 nano-dollars a token)."""
    cached_price = prices.get("cached_input", prices["input"])
    return ((prompt - cached) * prices["input"] + cached * cached_price + completion * prices["output"]) * 1000


def test_usage_records_cost_cached_tokens_priced_as_cached(env):
    priced = env.make_model(upstream="mock?tokens=3&cached=2", prices=MODEL_PRICES)
    listed = env.admin("GET", "/models").json()["data"]
    assert next(m for m in listed if m["name"] == priced)["prices"] == MODEL_PRICES
    override = env.make_model(prices=MODEL_PRICES, deployments=[
        {"name": "own", "backend": "vllm", "base_url": env.mock_url, "upstream_model": "mock?tokens=4&cached=1",
         "prices": DEPLOYMENT_PRICES},
    ])
    unpriced = env.make_model(upstream="mock?tokens=2")
    created = env.make_key(rpm=10_000)
    client = env.client(created["key"])
    started = int(time.time() * 1000)
    expected = {priced: 0, override: 0, unpriced: 0}
    cached = {priced: 0, override: 0, unpriced: 0}
    for model, prices, hit in [(priced, MODEL_PRICES, 2), (override, DEPLOYMENT_PRICES, 1)]:
        for _ in range(2):
            r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello there"}])
            assert r.usage.prompt_tokens_details.cached_tokens == hit
            expected[model] += nanos(prices, r.usage.prompt_tokens, hit, r.usage.completion_tokens)
            cached[model] += hit
        # Streamed, the usage chunk's cached tokens count alike.
        chunks = list(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello there"}], stream=True,
            stream_options={"include_usage": True}))
        usage = chunks[-1].usage
        expected[model] += nanos(prices, usage.prompt_tokens, hit, usage.completion_tokens)
        cached[model] += hit
    client.chat.completions.create(model=unpriced, messages=[{"role": "user", "content": "hi"}])
    report = env.admin("GET", f"/usage?key_id={created['id']}&from={started - 1000}").json()
    got = {m: 0 for m in expected}
    got_cached = {m: 0 for m in expected}
    for row in report["data"]:
        got[row["model"]] += row["cost_nanos"]
        got_cached[row["model"]] += row["cached_tokens"]
        assert abs(row["cost_usd"] - row["cost_nanos"] / 1e9) < 1e-12
    assert got == expected and expected[priced] > 0 and expected[override] > 0, report
    assert got_cached == cached, report
    assert report["totals"]["cost_usd"] == sum(expected.values()) / 1e9
    assert report["totals"]["cost_nanos"] == sum(expected.values()), report["totals"]


def test_bad_prices_are_refused(env):
    for bad in [{"input": -1, "output": 1}, {"input": 1}, {"input": 1, "output": 1, "per": "token"}, "cheap"]:
        r = env.admin("POST", "/models", {"name": "e2e-badprice", "backend": "vllm", "base_url": env.mock_url,
                                          "prices": bad})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "invalid_request_error"
