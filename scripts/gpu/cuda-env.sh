# Sourced by scripts/gpu/check-cuda.sh and scripts/gpu/gpu-kit.sh: NVIDIA's compiler, headers and
# NVVM as PyPI wheels in a virtual environment in the cache (~110 MB, once), and the
# variables candle's and cudarc's build scripts read (compute capability 90: H100/H200).
# Sets `cuda` to the toolkit folder; the caller sets CUDARC_CUDA_VERSION.
venv=${MIASCAN_CUDA_VENV:-$HOME/.cache/miascan/cuda-venv}
wheels="nvidia-cuda-nvcc==13.5.37 nvidia-cuda-runtime==13.5.37 nvidia-cuda-crt==13.5.37 nvidia-nvvm==13.5.37 nvidia-cuda-cccl==13.3.5.0.6"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show -q nvidia-nvvm >/dev/null 2>&1; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps $wheels
fi
cuda=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
[ -x "$cuda/bin/nvcc" ] || { echo "$0: no nvcc in $cuda" >&2; exit 1; }
export CUDA_COMPUTE_CAP=90
export CUDA_ROOT=$cuda CUDA_HOME=$cuda CUDA_PATH=$cuda PATH=$cuda/bin:$PATH
