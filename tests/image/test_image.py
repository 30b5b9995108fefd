"""The container image `make image` builds, proven without a container
runtime: `podman run` cannot start containers in this sandbox (crun may
not set RLIMIT_NOFILE), so the image's own filesystem is exported and its
entrypoint run from it, chrooted, as the image's user, with the image's
environment, against a real PostgreSQL and Redis. What runs is exactly
what the image holds: its binary, its panel, its CA bundle, nothing from
the host."""

import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import openai
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "e2e"))
from harness import free_port, http, on_free_port, start, start_postgres, start_redis, stop, wait_health  # noqa: E402

IMAGE = os.environ.get("MG_IMAGE", "modelgate:latest")
PODMAN = os.environ.get("MG_CONTAINER", "podman")


@pytest.fixture(scope="module")
def image():
    """(config, root of the exported filesystem)."""
    [info] = json.loads(subprocess.run([PODMAN, "image", "inspect", IMAGE], check=True,
                                       capture_output=True, text=True).stdout)
    root = pathlib.Path(tempfile.mkdtemp(prefix="mg-image-"))
    name = "mg-image-test-" + str(os.getpid())
    subprocess.run([PODMAN, "create", "--name", name, IMAGE], check=True, capture_output=True)
    try:
        exported = subprocess.run([PODMAN, "export", name], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=exported, check=True)
    finally:
        subprocess.run([PODMAN, "rm", "-f", name], capture_output=True)
    os.chmod(root, 0o755)
    try:
        # podman keeps the healthcheck beside the OCI config.
        yield {**info["Config"], "Healthcheck": info["Healthcheck"]}, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def is_static(path):
    """No program interpreter (PT_INTERP) among an ELF's program headers."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, "a 64-bit ELF"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return 3 not in types


def test_the_image_is_minimal_non_root_and_checks_its_health(image):
    config, root = image
    user = config["User"]
    assert user and user.split(":")[0] not in ("0", "root"), user
    assert config["Healthcheck"]["Test"] == ["CMD", "/modelgate", "health"]
    assert config["Entrypoint"] == ["/modelgate"] and config["Cmd"] == ["serve"]
    assert "8080/tcp" in config["ExposedPorts"]
    top = sorted(p.name for p in root.iterdir())
    assert top == ["admin", "data", "etc", "migrations", "modelgate"], top
    assert is_static(root / "modelgate"), "a static binary: the image has no libc"
    assert (root / "admin" / "index.html").exists()
    assert sorted(p.name for p in (root / "migrations").glob("*.sql")) == sorted(
        p.name for p in (pathlib.Path(__file__).resolve().parents[2] / "migrations").glob("*.sql"))
    assert (root / "migrations" / "postgres" / "0001_init.sql").exists()
    assert (root / "etc" / "ssl" / "certs" / "ca-certificates.crt").stat().st_size > 10_000
    assert (root / "data").stat().st_uid == int(user.split(":")[0]), "the SQLite default's directory is the user's"


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root (CI runs as root)")
def test_the_image_serves_from_its_own_filesystem(image):
    config, root = image
    tmp = tempfile.mkdtemp(prefix="mg-image-run-")
    procs = []
    try:
        (pg, database_url), _ = on_free_port(lambda p: start_postgres(p, tmp))
        procs.append(pg)
        redis, redis_port = on_free_port(start_redis)
        procs.append(redis)
        bin_dir = pathlib.Path(os.environ["MG_BIN_DIR"])
        mock, mock_url = start([str(bin_dir / "modelgate-mock")])
        procs.append(mock)
        port, admin_key = free_port(), "image-admin-" + os.urandom(8).hex()
        env = dict(e.split("=", 1) for e in config["Env"])
        env.update({"MG_HOST": "127.0.0.1", "MG_PORT": str(port), "MG_ADMIN_API_KEY": admin_key,
                    "MG_DATABASE_URL": database_url, "MG_REDIS_URL": f"redis://127.0.0.1:{redis_port}"})
        as_image = ["chroot", f"--userspec={config['User']}", str(root)]
        log = open(f"{tmp}/gateway.log", "w")
        gw = subprocess.Popen(as_image + config["Entrypoint"] + config["Cmd"], env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
        procs.append(gw)
        base = f"http://127.0.0.1:{port}"
        wait_health(base, timeout=60)
        # It runs as the image's user, and its HEALTHCHECK passes.
        uid = [line.split()[1] for line in pathlib.Path(f"/proc/{gw.pid}/status").read_text().splitlines()
               if line.startswith("Uid:")][0]
        assert uid == config["User"].split(":")[0]
        health = subprocess.run(as_image + config["Healthcheck"]["Test"][1:], env=env, capture_output=True)
        assert health.returncode == 0, health.stderr
        # The panel is the image's.
        panel = http("GET", base + "/admin/")
        assert panel.status_code == 200 and "<html" in panel.text.lower()
        admin = {"authorization": f"Bearer {admin_key}"}
        model = http("POST", base + "/admin/api/models", {"name": "image-mock", "backend": "vllm",
                                                           "base_url": mock_url, "upstream_model": "mock"},
                     headers=admin)
        assert model.status_code == 201, model.text
        key = http("POST", base + "/admin/api/keys", {"name": "image", "rpm": 2}, headers=admin).json()
        client = openai.OpenAI(base_url=base + "/v1", api_key=key["key"], max_retries=0, timeout=60)
        for _ in range(2):
            r = client.chat.completions.create(model="image-mock", messages=[{"role": "user", "content": "hi"}])
            assert r.usage.total_tokens > 0
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="image-mock", messages=[{"role": "user", "content": "hi"}])
        usage = http("GET", base + f"/admin/api/usage?key_id={key['id']}", headers=admin).json()
        assert sum(row["requests"] for row in usage["data"]) == 2
        # Migrations from the image's CLI: all applied at start already.
        migrate = subprocess.run(as_image + ["/modelgate", "migrate"], env=env, capture_output=True, text=True)
        assert migrate.returncode == 0 and json.loads(migrate.stdout) == {"applied": []}, migrate
        gw.terminate()
        assert gw.wait(timeout=40) == 0, "a clean shutdown on SIGTERM"
        log.close()
        assert "image-admin-" not in pathlib.Path(f"{tmp}/gateway.log").read_text()
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
