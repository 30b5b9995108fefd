"""Holes an outsider found, closed on every runtime: a zstd window bomb is
refused from its header after the rate limit, a stored conversation is
walked only after the rate limit, an upstream key never follows a changed
URL, and a replica that never answers gives way at its first-byte
deadline."""

import os
import socket
import threading

import httpx2 as httpx
import openai

from conftest import http as call


def zstd_window_bomb():
    """40 KB: a frame declaring a 1 TiB window, then 10,000 RLE blocks of
    128 KiB of spaces (1.3 GB decoded)."""
    frame = bytearray(b"\x28\xb5\x2f\xfd\x00\xf0")
    for i in range(10_000):
        header = (1 if i == 9_999 else 0) | 1 << 1 | (128 << 10) << 3
        frame += header.to_bytes(3, "little") + b" "
    return bytes(frame)


def test_a_zstd_window_bomb_is_a_413_then_the_rate_limit(env):
    created = env.make_key(rpm=1)
    # See test_compressed_request_bodies: the Lambda emulator takes binary
    # bodies only as such.
    binary = os.environ.get("MG_RUNTIME") == "lambda"
    headers = {"authorization": f"Bearer {created['key']}", "content-encoding": "zstd",
               "content-type": "application/octet-stream" if binary else "application/json"}
    bomb = zstd_window_bomb()
    first = httpx.post(env.base_url + "/v1/chat/completions", content=bomb, headers=headers, timeout=60)
    assert first.status_code == 413, first.text
    assert first.json()["error"]["code"] == "request_too_large"
    again = httpx.post(env.base_url + "/v1/chat/completions", content=bomb, headers=headers, timeout=60)
    assert again.status_code == 429, again.text


def test_a_stored_conversation_is_walked_only_after_the_rate_limit(env):
    model = env.make_model("mock?tokens=2")
    client = env.client(env.make_key(rpm=1)["key"])
    client.responses.create(model=model, input="hi")
    try:
        client.responses.create(model=model, input="again", previous_response_id="resp_nowhere")
        raise AssertionError("a key past its RPM walked a conversation")
    except openai.RateLimitError as e:
        assert e.code == "rate_limit_exceeded", e


def test_an_upstream_key_never_follows_a_changed_url(env):
    other = "http://127.0.0.1:9"  # nothing listens on the discard port
    name = env.make_model("mock?tokens=1", backend="openai", base_url=env.mock_url + "/v1",
                          api_key="sk-very-secret-upstream")
    model = next(m for m in env.admin("GET", "/models").json()["data"] if m["name"] == name)
    moved = env.admin("PATCH", f"/models/{model['id']}", {"base_url": other})
    assert moved.status_code == 400, moved.text
    assert moved.json()["error"]["param"] == "api_key"
    client = env.client(env.make_key()["key"])
    client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
    seen = call("GET", env.mock_url + "/_mock/last").json()
    assert seen["authorization"] == "Bearer sk-very-secret-upstream", "still at home"


def test_a_replica_that_never_answers_gives_way_at_its_first_byte_deadline(env):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held = []
    stop = threading.Event()

    def hold():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                pass

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        name = env.make_model(deployments=[
            {"name": "silent", "backend": "vllm", "base_url": url, "upstream_model": "mock",
             "first_byte_timeout_secs": 1},
            {"name": "backup", "backend": "vllm", "base_url": env.mock_url, "upstream_model": "mock?tokens=2",
             "priority": 1},
        ])
        client = env.client(env.make_key()["key"])
        r = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == " w0 w1"
        assert held, "the silent replica was tried first"
    finally:
        stop.set()
        holder.join()
        for c in held:
            c.close()
        silent.close()
