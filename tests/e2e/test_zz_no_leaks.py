"""Runs last: nothing secret reached the gateway's log during the whole run."""

import hashlib

import pytest


def test_log_holds_no_key_hash_or_upstream_url(env):
    if env.log_path is None:
        pytest.skip("the gateway's log is only captured when the suite starts it")
    log = env.log_path.read_text()
    assert "completed" in log, "the gateway's per-request log lines were captured"
    assert len(env.created_keys) > 10
    from conftest import UPSTREAM_SECRET
    assert UPSTREAM_SECRET not in log
    for key in env.created_keys + [env.admin_key]:
        assert key not in log
        assert hashlib.sha256(key.encode()).hexdigest() not in log
    for url in (env.mock_url, env.llama_url):
        assert url.split("//")[1] not in log, f"upstream address {url} in the log"
