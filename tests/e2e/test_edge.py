"""The edge on every runtime: which address is the client's, what reaches
an upstream, and what happens to a request whose client goes away."""
import openai
import pytest


def test_a_forged_x_forwarded_for_passes_no_ip_allowlist(env):
    """The platform's peer address counts (socket, Lambda sourceIp,
    cf-connecting-ip), not what the client writes in X-Forwarded-For."""
    model = env.make_model("mock")
    forged = env.client(env.make_key(allowed_ips=["10.0.0.0/8"])["key"])
    with pytest.raises(openai.PermissionDeniedError):
        forged.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"X-Forwarded-For": "10.1.2.3"})
    # The same allowlist with this machine's own address in it lets it in.
    local = env.client(env.make_key(allowed_ips=["127.0.0.0/8", "::1"])["key"])
    r = local.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}],
                                      extra_headers={"X-Forwarded-For": "10.1.2.3"})
    assert r.choices[0].message.content


def test_a_redirecting_upstream_is_not_followed(env):
    """A 307 to another host is an upstream error, on every runtime: the
    api3 key (x-api-key) never travels with it."""
    port = env.mock_url.rsplit(":", 1)[1]
    model = env.make_model(f"mock?redirect_port={port}", backend="api3", base_url=env.mock_url + "/v1",
                           api_key="env:E2E_UPSTREAM_KEY")
    client = env.client(env.make_key()["key"])
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502, e.value
    assert "localhost" not in str(e.value.body)


def test_a_client_that_hangs_up_before_the_answer_leaves_nothing_reserved(env):
    """A client that gives up (2 s, far past admission) while the upstream
    has not answered yet (10 s buffered; a stream whose upstream never sends
    its head): each
    request is still settled exactly once and its reservation released.
    Natively the gateway notices the hang-up; a runtime that does not lets
    the request run to its end and settles it then."""
    from test_soak import settled
    created = env.make_key(quota=1_000_000)
    slow = env.make_model("mock?ttft_ms=10000")
    never = env.make_model("mock?fault=hang")
    impatient = openai.OpenAI(base_url=env.base_url + "/v1", api_key=created["key"], max_retries=0, timeout=2)
    for model, stream in ((slow, False), (never, True)):
        with pytest.raises(openai.APITimeoutError):
            r = impatient.chat.completions.create(model=model, stream=stream, max_tokens=50,
                                                  messages=[{"role": "user", "content": "hello"}])
            if stream:
                list(r)
    totals, key = settled(env, created, 2, deadline_s=90)
    assert totals["requests"] == 2, totals
    assert key["quota_reserved"] == 0, key
    assert key["quota_used"] == totals["total_tokens"], (key, totals)


def test_admins_see_a_reservation_in_flight_and_release_it(env, request):
    """A request in flight holds a listed lease; an admin releases it at
    once; the request's own end later counts nothing more. On Lambda the
    admin asks a second instance (cargo lambda's emulator answers one
    invocation at a time per process), so this also shows a lease is seen
    by every instance."""
    import os
    import threading
    import time
    from conftest import http
    from test_soak import settled
    base = env.base_url
    if os.environ.get("MG_RUNTIME") == "lambda":
        base = request.getfixturevalue("second")

    def admin(method, path):
        return http(method, base + "/admin/api" + path, headers={"authorization": f"Bearer {env.admin_key}"})
    created = env.make_key(quota=1_000_000)
    # In flight for 10 s: far longer than listing takes on any machine.
    model = env.make_model("mock?ttft_ms=10000")
    client = env.client(created["key"])
    answers = []
    t = threading.Thread(target=lambda: answers.append(client.chat.completions.create(
        model=model, max_tokens=20, messages=[{"role": "user", "content": "hello"}])))
    t.start()
    deadline = time.time() + 30
    while True:
        held = [l for l in admin("GET", "/reservations").json()["data"] if l["key_id"] == created["id"]]
        if held or time.time() > deadline:
            break
        time.sleep(0.05)
    assert len(held) == 1 and held[0]["amount"] > 0 and held[0]["expires_at"] > held[0]["created_at"], held
    r = admin("DELETE", f"/reservations/{held[0]['request_id']}")
    assert r.status_code == 200, r.text
    assert admin("GET", f"/keys/{created['id']}").json()["quota_reserved"] == 0
    t.join(60)
    assert answers and answers[0].choices[0].message.content
    totals, key = settled(env, created, 1)
    assert totals["requests"] == 1 and totals["errors"] == 1, totals
    assert key["quota_reserved"] == 0 and key["quota_used"] == 0, key
