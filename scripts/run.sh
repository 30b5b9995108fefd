#!/usr/bin/env bash
# `make run`: the native gateway on its embedded default (SQLite file +
# in-process limiter) with a real local model to talk to: llama.cpp's server
# running SmolLM2-135M, registered as the model "smollm2".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=$(scripts/bootstrap.sh)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
cargo build --release --locked -p modelgate-server --bin modelgate
bin="$CARGO_TARGET_DIR/release/modelgate"

data=${MG_DATA_DIR:-$root/data}
mkdir -p "$data"
chmod 700 "$data"
export MG_DB_PATH=${MG_DB_PATH:-$data/modelgate.db}
export MG_PORT=${MG_PORT:-18080}
if [ -z "${MG_ADMIN_API_KEY:-}" ]; then
    # A local admin key, made once and kept private beside the database.
    if [ ! -s "$data/admin-key" ]; then
        (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/mg-admin-/' > "$data/admin-key")
    fi
    MG_ADMIN_API_KEY=$(cat "$data/admin-key")
    export MG_ADMIN_API_KEY
fi

llama_port=${MG_LLAMA_PORT:-18181}
"$venv/bin/python" scripts/llama_server.py --port "$llama_port" --threads "${MG_LLAMA_THREADS:-2}" > "$data/llama.log" 2>&1 &
llama_pid=$!
trap 'kill $llama_pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 600); do
    grep -q '^READY' "$data/llama.log" 2>/dev/null && break
    kill -0 $llama_pid 2>/dev/null || { cat "$data/llama.log"; exit 1; }
    sleep 0.1
done

cat > "$data/quickstart-models.toml" <<TOML
# Written by scripts/run.sh: the local llama.cpp server.
[[models]]
name = "smollm2"
backend = "llamacpp"
base_url = "http://127.0.0.1:$llama_port"
upstream_model = "smollm2-135m"
TOML
export MG_MODELS_FILE="$data/quickstart-models.toml"

if ! "$bin" keys list 2>/dev/null | grep -q '"name": "quickstart"'; then
    key=$("$bin" keys create --name quickstart 2>/dev/null | sed -n 's/.*"key": "\(mg-[0-9a-f]*\)".*/\1/p')
    cat <<MSG

  Your API key (shown once, stored only as a hash):  $key

MSG
else
    echo; echo "  The quickstart key was shown on first run. New key: $bin keys create --name me"; echo
fi
cat <<MSG
  Admin key (for /admin/api): in $data/admin-key

  Try it:
    curl http://127.0.0.1:$MG_PORT/v1/chat/completions \\
      -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' \\
      -d '{"model":"smollm2","messages":[{"role":"user","content":"Say hi"}]}'

  Or with the OpenAI SDK: base_url="http://127.0.0.1:$MG_PORT/v1", api_key=\$KEY, model="smollm2".

MSG
"$bin"
