"""One model, two deployments, one of them down: on every runtime every
request succeeds, for each API, and the usage names who served it."""

import time

from harness import free_port


def test_two_deployments_one_down_every_request_succeeds(env):
    down = f"http://127.0.0.1:{free_port()}"
    model = env.make_model(deployments=[
        {"name": "down", "backend": "vllm", "base_url": down, "upstream_model": "mock?tokens=2"},
        {"name": "up", "backend": "vllm", "base_url": env.mock_url, "upstream_model": "mock?tokens=2"},
    ])
    created = env.make_key(rpm=10_000)
    client = env.client(created["key"])
    started = int(time.time() * 1000)
    for _ in range(12):
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == " w0 w1"
    chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " w0 w1"
    assert client.completions.create(model=model, prompt="hi").choices[0].text == " w0 w1"
    assert client.embeddings.create(model=model, input="hi").data[0].embedding
    assert client.responses.create(model=model, input="hi", store=False).output_text == " w0 w1"
    rows = env.admin("GET", f"/usage?key_id={created['id']}&from={started - 1000}").json()["data"]
    served = {}
    for row in rows:
        served[row["deployment"]] = served.get(row["deployment"], 0) + row["requests"]
    assert served == {"up": 16}, rows
    listed = env.admin("GET", "/deployments")
    mine = next(m for m in listed.json()["data"] if m["model"] == model)
    assert [d["name"] for d in mine["deployments"]] == ["down", "up"]
    assert down not in listed.text and env.mock_url not in listed.text
