"""Runs last: nothing secret reached the gateway's log, or any answer a
client or the admin API got, during the whole run."""

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


def test_no_answer_held_a_key_hash_or_upstream_secret(env):
    """Every SDK response (headers and bodies, streams included) and every
    admin answer (but the one that shows a new key once) of the run."""
    from conftest import UPSTREAM_SECRET
    client = b"".join(env.client_seen).decode(errors="replace")
    admin = "\n".join(env.admin_seen)
    assert "chat.completion" in client and len(env.admin_seen) > 10, "the answers were captured"
    for text, where in ((client, "a client answer"), (admin, "an admin answer")):
        assert UPSTREAM_SECRET not in text, where
        for key in env.created_keys + [env.admin_key]:
            assert key not in text, f"a key in {where}"
            assert hashlib.sha256(key.encode()).hexdigest() not in text, f"a key hash in {where}"
    for url in (env.mock_url, env.llama_url):
        assert url.split("//")[1] not in client, f"upstream address {url} in a client answer"
