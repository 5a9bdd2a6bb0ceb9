#!/usr/bin/env bash
# Prints the CMAKE_ARGS that build llama.cpp (inside llama-cpp-python) for this machine's CPU
# without -march=native and without its AMX kernels: on virtual machines whose CPU reports AMX
# while the kernel does not grant it, a native build segfaults in ggml_backend_amx_mul_mat on
# the first forward (seen here: exit 139). The vector extensions the CPU has are enabled one
# by one instead. Used by setup-peers.sh and setup-llama-server.sh.
set -euo pipefail
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { [[ " $flags " == *" $1 "* ]] && echo ON || echo OFF; }
args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
args+=" -DGGML_AVX=$(has avx) -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma) -DGGML_F16C=$(has f16c)"
args+=" -DGGML_AVX512=$(has avx512f) -DGGML_AVX512_VNNI=$(has avx512_vnni)"
args+=" -DGGML_AVX512_BF16=$(has avx512_bf16) -DGGML_AVX512_VBMI=$(has avx512vbmi)"
args+=" -DGGML_AVX_VNNI=$(has avx_vnni)"
echo "$args"
