"""Lambda only: two function processes sharing one Redis and one SQLite
file (EFS) keep limits exact."""

import os
import openai
import pytest

from exactness import assert_quota_held, assert_rpm_held, spent

pytestmark = pytest.mark.skipif(os.environ.get("MG_RUNTIME") != "lambda", reason="the Lambda's instances")


def clients(env, second, key):
    other = openai.OpenAI(base_url=second + "/v1", api_key=key, max_retries=0, timeout=120)
    return [env.client(key), other]


def test_two_processes_admit_exactly_rpm(env, second):
    both = clients(env, second, env.make_key(rpm=10)["key"])
    assert_rpm_held(both, env.make_model("mock?tokens=1"), 10)


def test_two_processes_never_overspend_a_quota(env, second):
    created = env.make_key(quota=300, rpm=1000)
    both = clients(env, second, created["key"])
    charged = spent(both, env.make_model("mock?tokens=10&itl_ms=2"))
    assert_quota_held(env, created["id"], charged, 300)


def test_keys_live_in_the_configured_store(env):
    """The admin API writes to the store MG_STORE names, not elsewhere."""
    created = env.make_key()
    settings, _ = env.lambda_settings
    if settings.get("MG_STORE") == "dynamodb":
        import boto3

        table = boto3.resource("dynamodb", endpoint_url=settings["AWS_ENDPOINT_URL"], region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test").Table(
            settings["MG_DYNAMODB_TABLE"])
        item = table.get_item(Key={"pk": "key", "sk": created["id"]}, ConsistentRead=True).get("Item")
        assert item and item["name"] == created["name"]
        assert not os.path.exists(settings["MG_DB_PATH"])
    else:
        import sqlite3

        with sqlite3.connect(settings["MG_DB_PATH"]) as db:
            rows = db.execute("SELECT name FROM api_keys WHERE id = ?", (created["id"],)).fetchall()
        assert rows == [(created["name"],)]


def test_a_conversation_continues_on_another_process(env, second):
    key = env.make_key()["key"]
    one, two = clients(env, second, key)
    model = env.make_model("mock?tokens=1")
    first = one.responses.create(model=model, input="started on one")
    follow = two.responses.create(model=model, input="continued on two", previous_response_id=first.id)
    assert follow.previous_response_id == first.id
    assert two.responses.retrieve(first.id).id == first.id
