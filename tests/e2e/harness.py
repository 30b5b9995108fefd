"""Starting and stopping what the end-to-end suite and the benchmark drive:
processes that print `READY <url>`, the native gateway, the Worker under
`wrangler dev --local`, and a tiny stdlib HTTP helper."""

import json as jsonlib
import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]


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


def wait_health(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if http("GET", url + "/health", timeout=1).status_code == 200:
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


def start_redis(port):
    """A throwaway redis-server on a loopback port."""
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def start_lambda(port, settings, tmp, log):
    """The Lambda under `cargo lambda watch` (the runtime emulator); its
    Function URL is http://127.0.0.1:PORT/lambda-url/modelgate-lambda."""
    env = {**os.environ, **settings}
    cmd = ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(port)]
    return subprocess.Popen(cmd, cwd=ROOT / "lambda" / "modelgate-lambda", env=env, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
