#!/usr/bin/env bash
# The Python environment of the remote-engine tests and benchmark: llama-cpp-python 0.3.36
# (its low-level API runs the llama.cpp forward behind scripts/server/logprobs-server.py; its
# own server, whose prompt log-probs are one position off, is what the tests expect to be
# refused) with its server extras, and numpy. Idempotent: nothing is done when the venv
# already imports them.
#
# llama.cpp is compiled from the sdist with llama-cmake-args.sh's flags (no AMX kernels, no
# -march=native): ~8 min on 2 cores the first time, cached outside the clone.
#
# usage: scripts/fetch/setup-llama-server.sh [VENV_DIR]  (default: ~/.cache/miascan/llama-venv)
set -euo pipefail
venv=${1:-$HOME/.cache/miascan/llama-venv}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import llama_cpp, numpy, uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
args=$("$(dirname "$0")/llama-cmake-args.sh")
"$venv/bin/pip" install -q numpy
CMAKE_ARGS="$args" "$venv/bin/pip" install -q --no-cache-dir "llama-cpp-python[server]==0.3.36"
"$venv/bin/python" -c 'import llama_cpp, numpy; print("llama-cpp-python", llama_cpp.__version__)'
