"""Upstream MCP servers as admin objects, over HTTP, on whichever runtime:
created, listed, patched and deleted; header values never shown; names,
URLs and headers checked like every other upstream."""

import uuid

import pytest


def name():
    return "e2e-" + uuid.uuid4().hex[:10]


def test_mcp_server_crud_never_shows_header_values(env):
    body = {"name": name(), "url": env.mock_url + "/mcp/",
            "headers": {"Authorization": "Bearer env:E2E_UPSTREAM_KEY", "X-Tenant": "sk-literal-e2e-secret"}}
    r = env.admin("POST", "/mcp/servers", body)
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["id"].startswith("mcp_") and s["object"] == "mcp_server"
    assert s["url"] == env.mock_url + "/mcp" and s["enabled"] is True and s["timeout_ms"] == 60000
    assert s["headers"] == ["Authorization", "X-Tenant"]
    listed = env.admin("GET", "/mcp/servers")
    assert listed.status_code == 200 and any(x["id"] == s["id"] for x in listed.json()["data"])
    for text in (r.text, listed.text, env.admin("GET", f"/mcp/servers/{s['id']}").text):
        assert "sk-literal-e2e-secret" not in text and "E2E_UPSTREAM_KEY" not in text

    assert env.admin("POST", "/mcp/servers", {**body, "url": env.mock_url}).status_code == 409
    r = env.admin("PATCH", f"/mcp/servers/{s['id']}", {"headers": {"X-Tenant": None}, "enabled": False,
                                                          "timeout_ms": 5000})
    assert r.status_code == 200, r.text
    assert (r.json()["headers"], r.json()["enabled"], r.json()["timeout_ms"]) == (["Authorization"], False, 5000)
    assert r.json()["updated_at"] > s["updated_at"]
    assert env.admin("GET", f"/mcp/servers/{s['id']}").json()["enabled"] is False

    assert env.admin("DELETE", f"/mcp/servers/{s['id']}").status_code == 200
    assert env.admin("GET", f"/mcp/servers/{s['id']}").status_code == 404
    assert env.admin("DELETE", f"/mcp/servers/{s['id']}").status_code == 404
    assert env.admin("PATCH", f"/mcp/servers/{s['id']}", {"enabled": True}).status_code == 404
    assert env.admin("GET", "/mcp/servers/mcp_../../keys").status_code == 404


@pytest.mark.parametrize("change, param", [
    ({"name": "git_hub"}, "name"),
    ({"name": ""}, "name"),
    ({"url": "ftp://example.com/mcp"}, "url"),
    ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
    ({"url": "http://metadata.google.internal/mcp"}, "url"),
    ({"headers": {"Authorization": "Bearer env:MG_ADMIN_API_KEY"}}, "headers"),
    ({"headers": {"X-Key": "env:AWS_SECRET_ACCESS_KEY"}}, "headers"),
    ({"headers": {"Host": "evil.example"}}, "headers"),
    ({"headers": {"Mcp-Session-Id": "x"}}, "headers"),
    ({"timeout_ms": 10}, "timeout_ms"),
    ({"rpm": 0}, "rpm"),
])
def test_a_server_the_gateway_would_not_call_is_refused(env, change, param):
    body = {"name": name(), "url": env.mock_url + "/mcp", **change}
    r = env.admin("POST", "/mcp/servers", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_a_patch_is_checked_like_a_new_server_and_unknown_fields_are_refused(env):
    s = env.admin("POST", "/mcp/servers", {"name": name(), "url": env.mock_url + "/mcp"}).json()
    assert env.admin("PATCH", f"/mcp/servers/{s['id']}", {"url": "http://169.254.169.254/"}).status_code == 400
    assert env.admin("PATCH", f"/mcp/servers/{s['id']}", {"command": "/bin/sh"}).status_code == 400
    assert env.admin("POST", "/mcp/servers", {"name": name(), "url": env.mock_url, "command": "sh"}).status_code == 400
    assert env.admin("PUT", "/mcp/servers", {}).status_code == 405
    assert env.admin("GET", f"/mcp/servers/{s['id']}").json()["url"] == env.mock_url + "/mcp"
    env.admin("DELETE", f"/mcp/servers/{s['id']}")


def test_mcp_servers_need_an_admin_key(env, key):
    from conftest import http
    url = env.base_url + "/admin/api/mcp/servers"
    assert http("GET", url).status_code == 401
    assert http("GET", url, headers={"authorization": f"Bearer {key}"}).status_code == 403


def test_a_server_that_cannot_be_reached_is_a_bad_gateway_for_its_review(env):
    from harness import free_port
    url = f"http://127.0.0.1:{free_port()}/mcp"
    s = env.admin("POST", "/mcp/servers", {"name": name(), "url": url, "timeout_ms": 5000}).json()
    try:
        for method, path in (("GET", "tools"), ("POST", "tools/accept")):
            r = env.admin(method, f"/mcp/servers/{s['id']}/{path}")
            assert r.status_code == 502 and r.json()["error"]["code"] == "mcp_server_unavailable", r.text
            assert s["name"] in r.json()["error"]["message"] and url not in r.text
    finally:
        env.admin("DELETE", f"/mcp/servers/{s['id']}")
