#!/usr/bin/env bash
# The peer scorers' Python environment (../shared/peers), like ../shared/peers/setup.sh but
# with llama.cpp built without its AMX kernels: on virtual machines whose CPU reports AMX
# while the kernel does not grant it, a native build segfaults in ggml_backend_amx_mul_mat
# on the first forward (seen here: exit 139). The vector extensions the CPU has are enabled
# one by one instead of -march=native. About 10 minutes on 2 cores; ~6 GB.
#
# usage: scripts/fetch/setup-peers.sh [VENV_DIR]   (default: ~/.cache/miascan/peers-venv)
set -euo pipefail
venv=${1:-$HOME/.cache/miascan/peers-venv}
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch transformers accelerate gguf numpy safetensors tokenizers sentencepiece
args=$("$(dirname "$0")/llama-cmake-args.sh")
CMAKE_ARGS="$args" "$venv/bin/pip" install -q --force-reinstall --no-deps --no-cache-dir llama-cpp-python
"$venv/bin/pip" install -q llama-cpp-python  # its pure-Python dependencies
echo "peers ready: $venv/bin/python"
