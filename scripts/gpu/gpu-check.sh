#!/usr/bin/env bash
# The first GPU run (issue #14, point 6), in one device call of about 8 minutes on an
# H200: what `--device cuda` does with `--dtype f32/f16/bf16`, the bounded-memory weights
# on the device, and the speed against transformers on the same GPU.
#   1. smoke: one tiny checkpoint scored on cuda (the CUDA libraries found, kernels load);
#   2. scripts/gpu/gpu-parity.py: every tiny checkpoint in f32, f16, bf16 against its
#      transformers golden; Q8_0 GGUFs and a bf16 checkpoint, stored == expanded on cuda;
#   3. scripts/gpu/gpu-speed.py: random Llama-shaped 1B and 8B bf16 folders, miascan in bf16,
#      f16 and f32 (bf16 weights expanded per use) against transformers bf16.
# Each stage has its own time limit and is reported whatever the others did.
#
# usage (device machine, repo root, after scripts/gpu/gpu-kit.sh here):
#   run(command="bash scripts/gpu/gpu-check.sh", carry=[".gpu"], timeout_s=600)
# Results: $OUT/log.txt, $OUT/parity.json, $OUT/speed.json.
# Without a GPU, GPU_CHECK_DEVICE=cpu GPU_CHECK_SIZES=test tries the script itself.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
export PYTHONUNBUFFERED=1
dev=${GPU_CHECK_DEVICE:-cuda}
sizes=${GPU_CHECK_SIZES:-1b,8b}
bin=/tmp/miascan-kit
if [ ! -f .gpu/miascan.xz ]; then
  echo "no .gpu/miascan.xz: run scripts/gpu/gpu-kit.sh here and carry .gpu"
  exit 2
fi
python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
  .gpu/miascan.xz "$bin" && chmod +x "$bin"
echo "kit built from commit $(cat .gpu/commit 2>/dev/null), checkout at $(git rev-parse HEAD 2>/dev/null)"
# candle loads libcuda (the driver's) and cuBLAS/cuRAND at run time: the driver's folder
# and the CUDA wheels' lib folders of the machine's Python
libs=$(python3 - <<'PY'
import glob, os, site, sys
dirs = set()
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for lib in glob.glob(os.path.join(sp, "nvidia", "**", "lib"), recursive=True):
        dirs.add(lib)
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib:$libs:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores"
"$bin" --version || {
  echo "the binary does not start; what it needs and what is found:"
  ldd "$bin"
}

echo "== 1. smoke"
t=$SECONDS
timeout 60 "$bin" score --no-lowercase --device "$dev" -m tests/data/golden/tiny/llama \
  tests/data/golden/tiny/passages.jsonl -o "$out/smoke.jsonl"
echo "smoke: exit $?, $(wc -l <"$out/smoke.jsonl" 2>/dev/null) lines, $((SECONDS - t)) s"

echo "== 2. parity"
t=$SECONDS
timeout 170 python3 scripts/gpu/gpu-parity.py --bin "$bin" --device "$dev" --out "$out/parity.json"
echo "parity: exit $?, $((SECONDS - t)) s"

echo "== 3. speed"
t=$SECONDS
left=$((540 - SECONDS))
timeout $((left > 30 ? left : 30)) python3 scripts/gpu/gpu-speed.py --bin "$bin" --sizes "$sizes" \
  --device "$dev" --budget $((left - 20)) --out "$out/speed.json"
echo "speed: exit $?, $((SECONDS - t)) s; whole check $SECONDS s"
