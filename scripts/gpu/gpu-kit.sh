#!/usr/bin/env bash
# Builds what the first GPU run needs, here (the device machine has no Rust toolchain and no
# network): `miascan` with `--features cuda` (compute capability 90, H100/H200; nvcc and
# headers from NVIDIA's PyPI wheels, as scripts/gpu/check-cuda.sh), stripped and xz-compressed
# into .gpu/miascan.xz (ignored by git; it travels with the device tool's `carry`). About
# 25 minutes on 2 cores from cold.
#
# usage: scripts/gpu/gpu-kit.sh
# then, through the device tool: run(command="bash scripts/gpu/gpu-check.sh", carry=[".gpu"],
# timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/gpu/cuda-env.sh
# cudarc binds the CUDA 13.0 API (the GPU machine's driver 580 and torch cu130 are 13.0)
export CUDARC_CUDA_VERSION=13000
target=${CARGO_TARGET_DIR:-target}/cuda
# The binary links the driver, cuBLAS(Lt), cuRAND and NVRTC by name (cudarc's dynamic
# linking) and candle's MoE kernels against the CUDA runtime. Only the runtime comes with
# the wheels above; the others are stand-ins here that define the referenced names and
# carry the real libraries' sonames, so the binary binds to the real ones on the GPU
# machine (driver's libcuda.so.1, the CUDA wheels of its Python). The names are read off
# the compiled crates; the link is tried first so they exist.
stubs=$target/stubs
mkdir -p "$stubs"
ln -sf "$cuda/lib/libcudart.so.13" "$stubs/libcudart.so"
for l in cuda:1 nvrtc:13 curand:10 cublas:13 cublasLt:13; do
  [ -f "$stubs/lib${l%%:*}.so" ] || gcc -shared -o "$stubs/lib${l%%:*}.so" -Wl,-soname,lib${l%%:*}.so.${l##*:} -x c /dev/null
done
link() { LIBRARY_PATH=$stubs CARGO_TARGET_DIR=$target cargo build --release --features cuda --bin miascan; }
if ! link 2>/dev/null; then
  nm -u "$target"/release/deps/lib{cudarc,candle_core,candle_nn,miascan}-*.rlib 2>/dev/null |
    awk '{print $NF}' | grep -E '^(cu|nvrtc)' | grep -vE '^cuda' | sort -u >"$stubs/names"
  for l in cuda:1 nvrtc:13 curand:10 cublas:13 cublasLt:13; do
    n=${l%%:*}
    case $n in
      cuda) pick() { grep -vE '^(cublas|curand|nvrtc)'; } ;;
      cublas) pick() { grep '^cublas' | grep -v '^cublasLt'; } ;;
      *) pick() { grep "^$n"; } ;;
    esac
    pick <"$stubs/names" | sed 's/.*/void &(void) {}/' >"$stubs/$n.c" || true
    gcc -shared -fPIC -o "$stubs/lib$n.so" -Wl,-soname,lib$n.so.${l##*:} "$stubs/$n.c"
  done
  link
fi
mkdir -p .gpu
strip -o .gpu/miascan "$target/release/miascan"
xz -T2 -6 -f .gpu/miascan
git rev-parse HEAD >.gpu/commit
ls -la .gpu
