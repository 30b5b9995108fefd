"""End-to-end fixtures: a running gateway driven only over HTTP.

Against a gateway you already run (the Worker under `wrangler dev`, the
Lambda under `cargo lambda watch`), set:
  MG_BASE_URL   the gateway root, e.g. http://127.0.0.1:8787
  MG_ADMIN_KEY  its admin key
  MG_MOCK_URL   the mock upstream the gateway can reach (modelgate-mock)
  MG_LLAMA_URL  the llama.cpp server the gateway can reach
Without MG_BASE_URL the suite starts all of them itself on free loopback
ports (binaries from MG_BIN_DIR, default target/debug) and stops them: the
native server, with MG_RUNTIME=worker the Worker under `wrangler dev
--local` (MG_WRANGLER: the wrangler command) on a fresh local D1, or with
MG_RUNTIME=lambda the Lambda under `cargo lambda watch` with its own Redis
and SQLite file (with MG_LAMBDA_STORE=dynamodb: DynamoDB and its secrets in
Secrets Manager, both on moto's server).
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import uuid

import httpx2 as httpx  # the HTTP client openai 3.x is built on
import openai
import pytest

from harness import (NODE, ROOT, aws_fixtures, free_port, http, on_free_port, start, start_gateway, start_lambda,
                     start_moto, start_postgres, start_redis, stop, start_worker, wait_health)

# A deployment secret the gateway is started with (env var / wrangler --var,
# declared in MG_UPSTREAM_SECRETS; on Lambda with DynamoDB, a name in the
# Secrets Manager secret), for models whose upstream key is
# "env:E2E_UPSTREAM_KEY".
UPSTREAM_SECRET = os.environ.get("E2E_UPSTREAM_KEY", "sk-e2e-upstream-secret")


class Tee(httpx.BaseTransport):
    """Keeps a copy of every response (headers and body, streamed or not) an
    OpenAI client receives, for the final no-leak check."""

    def __init__(self, sink):
        self.inner = httpx.HTTPTransport()
        self.sink = sink

    def handle_request(self, request):
        resp = self.inner.handle_request(request)
        self.sink.append(str(resp.headers).encode())
        sink, body = self.sink, resp.stream

        class Copy(httpx.SyncByteStream):
            def __iter__(self):
                for chunk in body:
                    sink.append(chunk)
                    yield chunk

            def close(self):
                body.close()

        return httpx.Response(resp.status_code, headers=resp.headers, stream=Copy(), extensions=resp.extensions)


class Env:
    def __init__(self, base_url, admin_key, mock_url, llama_url, log_path=None):
        self.base_url = base_url
        self.admin_key = admin_key
        self.mock_url = mock_url
        self.llama_url = llama_url
        self.log_path = log_path
        self.created_keys = []
        self.client_seen = []  # every response an SDK client received
        self.admin_seen = []  # every admin answer but the one showing a new key
        self.worker_state = None  # the local D1/KV folder when the suite runs wrangler dev
        self.db_path = None  # the native server's SQLite file when the suite runs it
        self.database_url = None  # its PostgreSQL when it runs on one (MG_NATIVE_STORE)
        self.dynamodb = None  # (moto's URL, table) when the store is DynamoDB
        self.native = None  # the native server's (environment, scratch dir, bin dir), to start replicas
        self.lambda_settings = None  # the Lambda's settings, to start more instances of it

    def admin(self, method, path, json=None):
        r = http(method, self.base_url + "/admin/api" + path, json,
                 headers={"authorization": f"Bearer {self.admin_key}"})
        if not (method == "POST" and path == "/keys"):
            self.admin_seen.append(r.text)
        return r

    def make_key(self, **fields):
        fields.setdefault("name", "e2e-" + uuid.uuid4().hex[:8])
        r = self.admin("POST", "/keys", fields)
        assert r.status_code == 201, r.text
        self.created_keys.append(r.json()["key"])
        return r.json()

    def make_model(self, upstream="mock", backend="vllm", base_url=None, **extra):
        name = "e2e-" + uuid.uuid4().hex[:10]
        body = {"name": name, "upstream_model": upstream, **extra}
        if "deployments" not in extra:
            body |= {"backend": backend, "base_url": base_url or self.mock_url}
        r = self.admin("POST", "/models", body)
        assert r.status_code == 201, r.text
        return name

    def client(self, key):
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=key, max_retries=0, timeout=120,
                             http_client=httpx.Client(transport=Tee(self.client_seen), timeout=120))


@pytest.fixture(scope="session")
def env():
    if os.environ.get("MG_BASE_URL"):
        e = Env(os.environ["MG_BASE_URL"].rstrip("/"), os.environ["MG_ADMIN_KEY"],
                os.environ["MG_MOCK_URL"], os.environ["MG_LLAMA_URL"])
        wait_health(e.base_url)
        yield e
        return
    bin_dir = pathlib.Path(os.environ.get("MG_BIN_DIR", ROOT / "target" / "debug"))
    procs = []
    dynamodb = None
    tmp = tempfile.mkdtemp(prefix="mg-e2e-")
    try:
        mock, mock_url = start([str(bin_dir / "modelgate-mock")])
        procs.append(mock)
        llama, llama_url = start([sys.executable, str(ROOT / "scripts" / "llama_server.py"), "--threads", "1"],
                                 timeout=300)
        procs.append(llama)
        runtime = os.environ.get("MG_RUNTIME", "native")
        # The native gateway binds a port of its own choosing and says which.
        port = free_port() if runtime != "native" else None
        admin_key = "e2e-admin-" + uuid.uuid4().hex
        log_path = pathlib.Path(tmp) / "gateway.log"
        settings = {"MG_ADMIN_API_KEY": admin_key, "MG_TIMEOUT_SECS": "20", "MG_RETRY_BACKOFF_MS": "10",
                    "MG_MESSAGES_PING_SECS": "1",
                    "E2E_UPSTREAM_KEY": UPSTREAM_SECRET, "MG_UPSTREAM_SECRETS": "E2E_UPSTREAM_KEY",
                    # The programs local MCP servers may run (the native
                    # server alone runs any; the others refuse them).
                    "MG_MCP_COMMANDS": f"{sys.executable},{NODE}"}
        base = f"http://127.0.0.1:{port}"
        with open(log_path, "w") as log:
            if runtime == "worker":
                gw = start_worker(port, settings, tmp, log)
            elif runtime == "lambda":
                redis, redis_port = on_free_port(start_redis)
                procs.append(redis)
                settings.update({"MG_REDIS_URL": f"redis://127.0.0.1:{redis_port}", "MG_DB_PATH": f"{tmp}/db.sqlite",
                                 "MG_ADMIN_DIR": str(ROOT / "admin")})
                if os.environ.get("MG_LAMBDA_STORE") == "dynamodb":
                    # DynamoDB, and the secrets from Secrets Manager only.
                    moto, moto_port = on_free_port(start_moto)
                    procs.append(moto)
                    # The secret's names are declared by being there.
                    settings.pop("MG_UPSTREAM_SECRETS")
                    secret_names = ("MG_ADMIN_API_KEY", "E2E_UPSTREAM_KEY")
                    secrets = {n: settings.pop(n) for n in secret_names}
                    settings.update(aws_fixtures(f"http://127.0.0.1:{moto_port}", "modelgate-e2e", secrets))
                    dynamodb = (settings["AWS_ENDPOINT_URL"], settings["MG_DYNAMODB_TABLE"])
                gw = start_lambda(port, settings, tmp, log)
                base += "/lambda-url/modelgate-lambda"
            else:
                gw_env = {**os.environ, **settings, "MG_DB_PATH": f"{tmp}/db.sqlite",
                          "MG_LOG_FORMAT": "json", "MG_ADMIN_DIR": str(ROOT / "admin")}
                # MG_NATIVE_STORE: postgres, postgres+redis or dynamodb+redis
                # (replicas' settings); unset, the embedded SQLite default.
                store = os.environ.get("MG_NATIVE_STORE", "sqlite")
                if store.startswith("postgres"):
                    (pg, gw_env["MG_DATABASE_URL"]), _ = on_free_port(lambda p: start_postgres(p, tmp))
                    procs.append(pg)
                if store.startswith("dynamodb"):
                    moto, moto_port = on_free_port(start_moto)
                    procs.append(moto)
                    aws = aws_fixtures(f"http://127.0.0.1:{moto_port}", "modelgate-e2e")
                    gw_env.update(aws)
                    dynamodb = (aws["AWS_ENDPOINT_URL"], aws["MG_DYNAMODB_TABLE"])
                if store.endswith("redis"):
                    redis, redis_port = on_free_port(start_redis)
                    procs.append(redis)
                    gw_env["MG_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}"
                gw, base, metrics_url = start_gateway([str(bin_dir / "modelgate")], gw_env, log, metrics=True)
        procs.append(gw)
        wait_health(base, timeout=300)
        e = Env(base, admin_key, mock_url, llama_url, log_path)
        e.dynamodb = dynamodb
        if runtime == "worker":
            e.worker_state = f"{tmp}/wrangler-state"
        if runtime == "native":
            e.db_path = f"{tmp}/db.sqlite" if store == "sqlite" else None
            e.metrics_url = metrics_url
            e.database_url = gw_env.get("MG_DATABASE_URL")
            e.native = (gw_env, tmp, bin_dir)
        if runtime == "lambda":
            e.lambda_settings = (settings, tmp)
        yield e
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        # The logs stay for a look after a failure; a database's files go.
        for data in pathlib.Path(tmp).glob("pg-*"):
            shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def key(env):
    return env.make_key()["key"]


@pytest.fixture
def client(env, key):
    return env.client(key)


@pytest.fixture(scope="module")
def second(env):
    """Lambda only: a second function process sharing the first one's Redis
    and database, as a second instance would; its base URL."""
    settings, tmp = env.lambda_settings
    port = free_port()
    with open(f"{tmp}/lambda-2.log", "w") as log:
        proc = start_lambda(port, settings, tmp, log)
    base = f"http://127.0.0.1:{port}/lambda-url/modelgate-lambda"
    try:
        wait_health(base, timeout=300)
        yield base
    finally:
        stop(proc)
