#!/usr/bin/env bash
# Builds what the first GPU run needs, here (the device machine has no Rust toolchain and no
# network): `miascan` with `--features cuda` (compute capability 90, H100/H200; nvcc and
# headers from NVIDIA's PyPI wheels, as scripts/check-cuda.sh), stripped and xz-compressed
# into .gpu/miascan.xz (ignored by git; it travels with the device tool's `carry`). About
# 10 minutes on 2 cores from cold.
#
# usage: scripts/gpu-kit.sh
# then, through the device tool: run(command="bash scripts/gpu-check.sh", carry=[".gpu"],
# timeout_s=600)
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
export CUDARC_CUDA_VERSION=13040 CUDA_COMPUTE_CAP=90
export CUDA_ROOT=$cuda CUDA_HOME=$cuda CUDA_PATH=$cuda PATH=$cuda/bin:$PATH
target=${CARGO_TARGET_DIR:-target}/cuda
CARGO_TARGET_DIR=$target cargo build --release --features cuda --bin miascan
mkdir -p .gpu
strip -o .gpu/miascan "$target/release/miascan"
xz -T2 -6 -f .gpu/miascan
git rev-parse HEAD >.gpu/commit
ls -la .gpu
