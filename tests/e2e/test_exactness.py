"""Limits that hold under concurrency, through real HTTP."""

from exactness import assert_quota_held, assert_rpm_held, spent


def test_fifty_parallel_requests_on_rpm_ten_admit_exactly_ten(env):
    client = env.client(env.make_key(rpm=10)["key"])
    assert_rpm_held([client], env.make_model("mock?tokens=1"), 10)


def test_parallel_requests_never_overspend_a_quota(env):
    created = env.make_key(quota=300, rpm=1000)
    charged = spent([env.client(created["key"])], env.make_model("mock?tokens=10&itl_ms=2"))
    assert_quota_held(env, created["id"], charged, 300)
