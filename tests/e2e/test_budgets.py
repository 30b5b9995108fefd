"""Money budgets and quota periods, through real HTTP on every runtime and
store: a budget is spent to what the usage records cost and never past it
under concurrency, refusals say which limit and when it resets, and the
admin API shows each counter's window."""

import datetime
from concurrent.futures import ThreadPoolExecutor

import openai

from conftest import http as call

# 1000 USD per million tokens: a token costs a tenth of a cent.
PRICES = {"input": 1000, "output": 1000}


def next_month_utc():
    today = datetime.datetime.now(datetime.timezone.utc).date()
    first = (today.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    return int(datetime.datetime(first.year, first.month, 1, tzinfo=datetime.timezone.utc).timestamp() * 1000)


def spend(env, client, model, n):
    def one(_):
        try:
            r = client.chat.completions.create(model=model, max_tokens=4,
                                               messages=[{"role": "user", "content": "a b c"}])
            return r.usage.total_tokens
        except openai.RateLimitError as e:
            assert e.code == "insufficient_quota", e
            assert "budget" in e.message and "resets in" in e.message, e.message
            retry = int(e.response.headers["retry-after"])
            assert 0 < retry <= 86_400, retry
            return 0

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_parallel_requests_never_overspend_a_daily_budget(env):
    model = env.make_model("mock?tokens=4", prices=PRICES)
    created = env.make_key(rpm=10_000, budget_usd=0.2, budget_period="daily")
    assert created["budget_usd"] == 0.2 and created["budget_period"] == "daily"
    charged = spend(env, env.client(created["key"]), model, 30)
    assert charged.count(0) > 0, "some requests were refused"
    key = env.admin("GET", f"/keys/{created['id']}").json()
    assert key["budget_reserved_nanos"] == 0, "every reservation released"
    # Each token cost 1,000,000 nano-dollars: what was spent is what the
    # answered requests used, and no more than the budget.
    assert key["budget_used_nanos"] == sum(charged) * 1_000_000 <= 200_000_000, (key, charged)
    usage = env.admin("GET", f"/usage?key_id={created['id']}").json()
    assert usage["totals"]["cost_usd"] * 1e9 == key["budget_used_nanos"]
    midnight = datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=1)
    assert key["budget_resets_at"] == int(datetime.datetime(
        midnight.year, midnight.month, midnight.day, tzinfo=datetime.timezone.utc).timestamp() * 1000)


def test_a_budget_caps_what_a_request_may_generate(env):
    """Without max_tokens, the gateway caps the completion at what the
    budget left can pay for, so the request is admitted and cannot overspend."""
    model = env.make_model("mock?tokens=500", prices=PRICES)
    created = env.make_key(budget_usd=0.1)
    r = env.client(created["key"]).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}])
    key = env.admin("GET", f"/keys/{created['id']}").json()
    assert 0 < r.usage.completion_tokens < 100
    assert key["budget_used_nanos"] == r.usage.total_tokens * 1_000_000 <= 100_000_000


def test_quota_periods_and_budgets_are_shown_and_changed(env):
    created = env.make_key(quota=1000, quota_period="monthly")
    assert created["quota_period"] == "monthly" and created["quota_resets_at"] == next_month_utc()
    assert created["budget_usd"] is None and created["budget_resets_at"] is None
    r = env.admin("PATCH", f"/keys/{created['id']}", {"budget_usd": 5, "budget_period": "weekly"})
    assert r.status_code == 200, r.text
    assert r.json()["budget_usd"] == 5 and r.json()["budget_resets_at"] > r.json()["budget_window"]
    for bad in [{"budget_usd": -1}, {"budget_period": "hourly"}, {"budget_usd": "ten"}]:
        r = env.admin("PATCH", f"/keys/{created['id']}", bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error"
    r = env.admin("PATCH", f"/keys/{created['id']}", {"budget_used_usd": 1.5, "quota_used": 400})
    assert (r.json()["budget_used_usd"], r.json()["quota_used"]) == (1.5, 400), r.text
    assert env.admin("GET", f"/keys/{created['id']}").json()["budget_used_nanos"] == 1_500_000_000
    r = env.admin("PATCH", f"/keys/{created['id']}", {"budget_usd": None})
    assert r.json()["budget_usd"] is None


def test_an_exhausted_quota_says_when_its_period_resets(env):
    model = env.make_model("mock?tokens=2")
    created = env.make_key(quota=1, quota_period="monthly")
    r = call("POST", env.base_url + "/v1/chat/completions",
             {"model": model, "messages": [{"role": "user", "content": "hello there"}]},
             headers={"authorization": f"Bearer {created['key']}"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota", r.text
    assert "resets in" in r.json()["error"]["message"]
    headers = {k.lower(): v for k, v in r.headers.items()}
    assert 0 < int(headers["retry-after"]) <= 31 * 86_400


def test_a_budget_key_is_refused_on_an_unpriced_model_unless_it_is_marked_free(env):
    """An unpriced model costs nothing, so a budget would never stop it: a
    key with a budget may use only priced models, prices of 0 included."""
    unpriced = env.make_model("mock?tokens=2")
    free = env.make_model("mock?tokens=2", prices={"input": 0, "output": 0})
    budgeted = env.client(env.make_key(rpm=10_000, budget_usd=1)["key"])
    try:
        budgeted.chat.completions.create(model=unpriced, messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("an unpriced model served a key with a budget")
    except openai.PermissionDeniedError as e:
        assert e.code == "model_not_priced" and e.param == "model", e
    assert budgeted.chat.completions.create(model=free, messages=[{"role": "user", "content": "hi"}]).choices
    plain = env.client(env.make_key(rpm=10_000)["key"])
    assert plain.chat.completions.create(model=unpriced, messages=[{"role": "user", "content": "hi"}]).choices
