"""compose.yaml holds together: the gateway waits for healthy PostgreSQL and
Redis, points at them by service name, and `modelgate` accepts every setting
it is given (a bad one exits 2; an unreachable server, 1)."""

import pathlib
import re
import subprocess
import sys

import yaml

root = pathlib.Path(__file__).resolve().parents[1]
compose = yaml.safe_load((root / "compose.yaml").read_text())
services = compose["services"]
assert set(services) == {"gateway", "postgres", "redis"}, services
gateway = services["gateway"]
for dep in ("postgres", "redis"):
    assert gateway["depends_on"][dep]["condition"] == "service_healthy", dep
    assert "healthcheck" in services[dep], dep
env = {k: str(v) for k, v in gateway["environment"].items()}
# ${VAR:?message} placeholders, as compose fills them.
env = {k: re.sub(r"\$\{(\w+):\?[^}]*\}", "placeholder-" + "x" * 32, v) for k, v in env.items()}
assert env["MG_DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["MG_DATABASE_URL"]
assert env["MG_REDIS_URL"] == "redis://redis:6379"
binary = pathlib.Path(sys.argv[1])
# Nothing listens on this port: `health` gets past the settings and fails.
checked = subprocess.run([str(binary), "health"], env={**env, "MG_PORT": "9"}, capture_output=True, text=True)
assert checked.returncode == 1, (checked.returncode, checked.stderr)
print("compose.yaml: ok")
