"""What template.yaml promises, checked against the code it deploys (the
linters accept a wrong InvokeMode, and cannot know what our binary reads).
Run by `make test-lambda` after `sam validate --lint`, `cfn-lint` and
`sam build`."""

import pathlib
import re

from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE, _ = decode(str(ROOT / "template.yaml"))
RES = TEMPLATE["Resources"]
FN = RES["Gateway"]
PROPS = FN["Properties"]


def source(*parts):
    return "\n".join(p.read_text() for p in (ROOT.joinpath(*parts)).rglob("*.rs"))


def test_function_is_a_streaming_arm64_rust_function():
    assert FN["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert FN["Metadata"]["BuildProperties"]["Binary"] == "modelgate-lambda"
    assert (PROPS["Runtime"], PROPS["Architectures"], PROPS["Handler"]) == ("provided.al2023", ["arm64"], "bootstrap")
    assert PROPS["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    assert PROPS["FunctionUrlConfig"]["AuthType"] == "NONE", "the gateway authenticates API keys itself"
    # The gateway's own deadline (300 s) must end streams before Lambda does.
    assert PROPS["Timeout"] > 300


def test_environment_names_are_the_ones_the_binary_reads():
    code = source("lambda", "modelgate-lambda", "src")
    read = set(re.findall(r'setting\("(MG_[A-Z_]+)"\)', code))
    given = set(PROPS["Environment"]["Variables"])
    assert given <= read, f"template sets variables the function ignores: {given - read}"
    assert {"MG_REDIS_URL", "MG_STORE", "MG_SECRETS_ARN"} <= given


def test_admin_panel_layer_lands_where_the_function_looks():
    assert PROPS["Environment"]["Variables"]["MG_ADMIN_DIR"] == "/opt/admin"
    built = ROOT / ".aws-sam" / "build" / "AdminPanel" / "admin" / "index.html"
    assert built.read_text() == (ROOT / "admin" / "index.html").read_text(), "run sam build first"


def test_table_matches_the_store_and_the_policy_covers_its_calls():
    table = RES["Table"]["Properties"]
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {("pk", "S"), ("sk", "S")}
    code = source("crates", "modelgate-dynamodb", "src")
    calls = set(re.findall(r"\.(get_item|put_item|update_item|delete_item|query|scan|transact_write_items)\(\)", code))
    # A transaction needs the rights of the writes inside it.
    needed = {c for c in calls if c != "transact_write_items"}
    if "transact_write_items" in calls:
        needed |= {w for w, kind in [("put_item", "Put"), ("update_item", "Update"), ("delete_item", "Delete")]
                   if re.search(rf"\b{kind}::builder\(\)", code)}
    actions = {"dynamodb:" + "".join(w.title() for w in c.split("_")) for c in needed}
    granted = set()
    for policy in PROPS["Policies"]:
        if isinstance(policy, dict) and "Fn::If" in policy and policy["Fn::If"][0] == "UseDynamoDB":
            for st in policy["Fn::If"][1]["Statement"]:
                granted |= set(st["Action"])
    assert actions <= granted, f"missing: {actions - granted}"
    assert granted <= actions, f"more than the store uses: {granted - actions}"


def test_secrets_are_read_only_and_only_our_own():
    st = PROPS["Policies"][0]["Statement"][0]
    assert st["Action"] == "secretsmanager:GetSecretValue"
    assert st["Resource"] == {"Ref": "Secrets"}
    generated = RES["Secrets"]["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "MG_ADMIN_API_KEY"


def test_no_policy_grants_a_wildcard():
    text = (ROOT / "template.yaml").read_text()
    assert not re.search(r"Action:\s*['\"]?\*|Resource:\s*['\"]?\*", text)
