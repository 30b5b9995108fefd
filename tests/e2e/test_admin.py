"""The admin API over HTTP: every store operation, on whichever runtime."""

import time


def test_models_crud(env):
    name = env.make_model("mock?tokens=1")
    models = env.admin("GET", "/models").json()["data"]
    m = next(m for m in models if m["name"] == name)
    assert "api_key" not in m and m["has_api_key"] is False
    r = env.admin("PATCH", f"/models/{m['id']}", {"api_key": "sk-secret-upstream", "enabled": False})
    assert r.status_code == 200 and r.json()["has_api_key"] is True and r.json()["enabled"] is False
    assert "sk-secret-upstream" not in r.text
    assert env.admin("GET", f"/models/{m['id']}").json()["enabled"] is False
    dup = env.admin("POST", "/models", {"name": name, "backend": "vllm", "base_url": env.mock_url})
    assert dup.status_code == 409
    assert env.admin("DELETE", f"/models/{m['id']}").status_code == 200
    assert env.admin("GET", f"/models/{m['id']}").status_code == 404
    assert env.admin("DELETE", f"/models/{m['id']}").status_code == 404


def test_keys_patch_and_list(env):
    created = env.make_key(rpm=5)
    r = env.admin("PATCH", f"/keys/{created['id']}", {"rpm": 7, "quota": None, "allowed_models": ["a"]})
    assert r.status_code == 200
    assert (r.json()["rpm"], r.json()["quota"], r.json()["allowed_models"]) == (7, None, ["a"])
    listed = env.admin("GET", "/keys").json()["data"]
    assert any(k["id"] == created["id"] for k in listed)
    assert created["key"] not in env.admin("GET", "/keys").text
    assert env.admin("PATCH", f"/keys/{created['id']}", {"rpm": 0}).status_code == 400
    assert env.admin("GET", "/keys/key_000000000000000000000000").status_code == 404


def test_sync_imports_backend_models(env):
    r = env.admin("POST", "/models/sync", {"backend": "ollama", "base_url": env.mock_url})
    assert r.status_code == 200, r.text
    names = {m["name"] for m in env.admin("GET", "/models").json()["data"]}
    assert {"mock", "mock-2"} <= names


def test_admin_needs_an_admin_key(env, key):
    from conftest import http
    assert http("GET", env.base_url + "/admin/api/keys").status_code == 401
    assert http("GET", env.base_url + "/admin/api/keys", headers={"authorization": f"Bearer {key}"}).status_code == 403


def test_usage_report_by_day(env):
    created = env.make_key()
    client = env.client(created["key"])
    model = env.make_model("mock?tokens=2")
    client.completions.create(model=model, prompt="a b")
    for _ in range(100):
        r = env.admin("GET", f"/usage?key_id={created['id']}&from=2020-01-01").json()
        if r["data"]:
            break
        time.sleep(0.02)
    assert r["data"][0]["model"] == model
    assert r["data"][0]["requests"] == 1 and r["totals"]["total_tokens"] == 4
    assert len(r["data"][0]["day"]) == 10


def test_upstream_key_from_a_deployment_secret(env, client):
    from conftest import UPSTREAM_SECRET, http
    model = env.make_model("mock", backend="openai", base_url=env.mock_url + "/v1", api_key="env:E2E_UPSTREAM_KEY")
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    seen = http("GET", env.mock_url + "/_mock/last").json()
    assert seen["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    listed = env.admin("GET", "/models").text
    assert UPSTREAM_SECRET not in listed


def test_an_admin_cannot_point_an_upstream_key_at_other_deployment_secrets(env):
    """Only declared upstream secrets resolve: the bootstrap admin key, the
    platform's credentials and anything else undeclared are refused with a
    400 when written, so no upstream an admin controls can receive them."""
    for name in ("MG_ADMIN_API_KEY", "AWS_SECRET_ACCESS_KEY", "HOME", "PATH"):
        body = {"name": "e2e-secret-" + name.lower(), "backend": "openai", "base_url": env.mock_url + "/v1",
                "api_key": "env:" + name}
        for method, path, b in (("POST", "/models", body),
                                ("POST", "/models/sync", {"backend": "openai", "base_url": env.mock_url + "/v1",
                                                          "api_key": "env:" + name})):
            r = env.admin(method, path, b)
            assert r.status_code == 400, (name, path, r.text)
            assert r.json()["error"]["param"] == "api_key"


def test_the_admin_panel_is_served_with_security_headers(env):
    from conftest import http
    page = http("GET", env.base_url + "/admin/")
    assert page.status_code == 200 and "<title>ModelGate admin</title>" in page.text
    headers = {k.lower(): v for k, v in page.headers.items()}
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    script = http("GET", env.base_url + "/admin/app.js")
    assert script.status_code == 200 and "javascript" in {k.lower(): v for k, v in script.headers.items()}["content-type"]
    assert http("GET", env.base_url + "/admin/../Cargo.toml").status_code in (400, 404)
