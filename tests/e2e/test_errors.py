"""Every failure reaches the SDK as the typed error it expects."""

import socket

import openai
import pytest


def ask(client, model, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **kw)


def test_401_for_a_wrong_key(env):
    model = env.make_model()
    with pytest.raises(openai.AuthenticationError) as e:
        ask(env.client("mg-not-a-key"), model)
    assert e.value.code == "invalid_api_key"


def test_401_for_a_revoked_key(env):
    created = env.make_key()
    client = env.client(created["key"])
    model = env.make_model()
    ask(client, model)
    assert env.admin("DELETE", f"/keys/{created['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError) as e:
        ask(client, model)
    assert e.value.code == "api_key_revoked"


def test_404_for_an_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        ask(client, "no-such-model")
    assert e.value.code == "model_not_found"


def test_400_for_bad_parameters(env, client):
    model = env.make_model()
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, model, temperature=7)
    assert e.value.param == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=[])


def test_413_for_a_body_over_the_limit(env, client):
    model = env.make_model()
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x" * (6 * 1024 * 1024)}])
    assert e.value.status_code == 413
    assert e.value.code == "request_too_large"


def test_429_rate_limit(env):
    client = env.client(env.make_key(rpm=2)["key"])
    model = env.make_model()
    ask(client, model)
    ask(client, model)
    with pytest.raises(openai.RateLimitError) as e:
        ask(client, model)
    assert e.value.code == "rate_limit_exceeded"
    assert int(e.value.response.headers["retry-after"]) >= 1


def test_429_insufficient_quota(env):
    client = env.client(env.make_key(quota=30)["key"])
    model = env.make_model()
    with pytest.raises(openai.RateLimitError) as e:
        ask(client, model, max_tokens=100)
    assert e.value.code == "insufficient_quota"


def test_upstream_down_is_a_502(env, client):
    s = socket.socket()  # a port nothing listens on
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    model = env.make_model(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(openai.InternalServerError) as e:
        ask(client, model)
    assert e.value.status_code == 502
    assert str(port) not in e.value.message


def test_a_stream_that_fails_midway_raises_in_band(env, client):
    model = env.make_model("mock?tokens=6&fault=cut&after=3")
    stream = ask(client, model, stream=True)
    got = []
    with pytest.raises(openai.APIError) as e:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got[:3] == [" w0", " w1", " w2"]
    assert "ended before it was complete" in str(e.value)
