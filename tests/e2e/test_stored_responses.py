"""Stored responses through the official SDK: retrieve, delete, input items,
a three-turn conversation with previous_response_id on a stateless
backend (the upstream request shows the earlier turns), key isolation, and
the same on the real llama.cpp model."""

import sqlite3

import openai
import pytest

from harness import d1_execute, http


def upstream_messages(env):
    """The chat messages the mock upstream received last: (role, text)."""
    body = http("GET", env.mock_url + "/_mock/last").json()["body"]
    out = []
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content)
        out.append((m["role"], content))
    return out


def test_retrieve_input_items_and_delete(env, client):
    model = env.make_model("mock?tokens=2")
    r = client.responses.create(model=model, input="keep me")
    assert r.store is True
    got = client.responses.retrieve(r.id)
    assert (got.id, got.output_text, got.status) == (r.id, " w0 w1", "completed")
    items = client.responses.input_items.list(r.id)
    assert [i.type for i in items.data] == ["message"]
    assert items.data[0].content[0].text == "keep me"
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


@pytest.mark.parametrize("stream", [False, True])
def test_a_three_turn_conversation_on_a_stateless_backend(env, client, stream):
    model = env.make_model("mock?tokens=2")
    previous = None
    for turn in ("one", "two", "three"):
        if stream:
            with client.responses.stream(model=model, input=turn, previous_response_id=previous) as s:
                r = s.get_final_response()
        else:
            r = client.responses.create(model=model, input=turn, previous_response_id=previous)
        assert r.previous_response_id == previous
        previous = r.id
    assert upstream_messages(env) == [("user", "one"), ("assistant", " w0 w1"), ("user", "two"),
                                      ("assistant", " w0 w1"), ("user", "three")]
    page = client.responses.input_items.list(previous, order="asc")
    assert [i.content[0].text for i in page.data] == ["three"]


def test_another_key_cannot_read_or_continue(env, client):
    model = env.make_model("mock?tokens=1")
    r = client.responses.create(model=model, input="mine")
    other = env.client(env.make_key()["key"])
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError) as e:
        other.responses.create(model=model, input="x", previous_response_id=r.id)
    assert e.value.body["param"] == "previous_response_id"
    assert client.responses.retrieve(r.id).id == r.id


def test_unknown_ids_are_404s(env, client):
    model = env.make_model()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_nope")
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model=model, input=[{"type": "item_reference", "id": "msg_nope"}])
    assert e.value.body["param"] == "input[0].id"


def expire_in_store(env, response_id):
    """Move a stored response's end into the past, in the runtime's own
    store: its time passes."""
    past = "UPDATE responses SET expires_at = 1 WHERE id = '%s'" % response_id
    if env.worker_state:
        d1_execute(env.worker_state, past)
    elif env.dynamodb:
        import boto3

        endpoint, name = env.dynamodb
        table = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test").Table(name)
        table.update_item(Key={"pk": f"response#{response_id}", "sk": "response"},
                          UpdateExpression="SET expires_at = :past", ExpressionAttributeValues={":past": 1})
    elif env.database_url:
        import subprocess

        subprocess.run(["psql", "-q", env.database_url, "-c", past], check=True, capture_output=True)
    else:
        path = env.db_path or (env.lambda_settings and env.lambda_settings[0]["MG_DB_PATH"])
        if not path:
            pytest.skip("the gateway's store is not reachable from the suite (MG_BASE_URL)")
        with sqlite3.connect(path) as db:
            assert db.execute(past).rowcount == 1


def test_an_expired_response_is_gone_for_every_read(env, client):
    model = env.make_model("mock?tokens=1")
    r = client.responses.create(model=model, input="short-lived")
    assert client.responses.retrieve(r.id).id == r.id
    expire_in_store(env, r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=model, input="x", previous_response_id=r.id)
