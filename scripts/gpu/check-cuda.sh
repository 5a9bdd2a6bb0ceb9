#!/usr/bin/env bash
# Compiles the CUDA build (`--features cuda`: candle's CUDA kernels to PTX with nvcc, cudarc)
# without a GPU, as CI does: NVIDIA's compiler, headers and NVVM come as PyPI wheels into a
# virtual environment in the cache (~110 MB, once). Compute capability 90 (H100/H200).
# About 5.5 minutes on 2 cores from cold; nothing here runs on a GPU.
#
# usage: scripts/gpu/check-cuda.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/gpu/cuda-env.sh
# cudarc 0.19 knows CUDA up to 13.4; the runtime API it binds is loaded dynamically at run time
export CUDARC_CUDA_VERSION=13040
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}/cuda-check \
  cargo check --release --features cuda --all-targets
