#!/usr/bin/env bash
# Compiles the CUDA build (`--features cuda`: candle's CUDA kernels to PTX with nvcc, cudarc)
# without a GPU, as CI does: NVIDIA's compiler, headers and NVVM come as PyPI wheels into a
# virtual environment in the cache (~110 MB, once). Compute capability 90 (H100/H200).
# About 5.5 minutes on 2 cores from cold; nothing here runs on a GPU.
#
# usage: scripts/check-cuda.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MIASCAN_CUDA_VENV:-$HOME/.cache/miascan/cuda-venv}
wheels="nvidia-cuda-nvcc==13.5.37 nvidia-cuda-runtime==13.5.37 nvidia-cuda-crt==13.5.37 nvidia-nvvm==13.5.37 nvidia-cuda-cccl==13.3.5.0.6"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show -q nvidia-nvvm >/dev/null 2>&1; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps $wheels
fi
cuda=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
[ -x "$cuda/bin/nvcc" ] || { echo "check-cuda: no nvcc in $cuda" >&2; exit 1; }
# cudarc 0.19 knows CUDA up to 13.4; the runtime API it binds is loaded dynamically at run time
export CUDARC_CUDA_VERSION=13040 CUDA_COMPUTE_CAP=90
export CUDA_ROOT=$cuda CUDA_HOME=$cuda CUDA_PATH=$cuda PATH=$cuda/bin:$PATH
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}/cuda-check \
  cargo check --release --features cuda --all-targets
