#!/usr/bin/env bash
# WikiMIA-32 and -64 (../shared/wikimia, the project's copy of swj0419/WikiMIA) with every
# pretraining score the default model can run — Min-K%, Min-K%++, Gap-K%, SURP at k 0.1,
# 0.2, 0.5, zlib, lowercase, ReCaLL and Con-ReCall with the bundled prefixes — and the blind
# baseline: AUROC and TPR at 1% FPR with 95% bootstrap intervals, to set beside the
# published tables. DC-PDD is left out: it needs a general-English reference corpus in the
# model's vocabulary (the authors count a C4 slice), which is not available offline here.
#
#   scripts/bench/wikimia.sh [OUT_DIR]        (default bench-results/wikimia)
#
# MIASCAN_MODEL picks the model (default: SmolLM2-135M-Instruct Q4_1). ~12 min on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${MIASCAN_BIN:-$root/target/release/miascan}
wikimia=${WIKIMIA:-$root/../shared/wikimia}
out=${1:-$root/bench-results/wikimia}
mkdir -p "$out"
lscpu | grep -m1 "Model name" | tee "$out/cpu.txt"
for n in 32 64; do
  /usr/bin/time -f "WikiMIA-$n: %e s" "$bin" eval "$wikimia/$n.jsonl" --label-field label \
    --text-field input --k 0.1,0.2,0.5 --recall-prefix recall-written-2026 \
    --member-prefix member-public-domain --json "$out/eval-$n.json" > "$out/eval-$n.txt"
done
python3 "$root/scripts/bench/eval-table.py" "WikiMIA-32=$out/eval-32.json" \
  "WikiMIA-64=$out/eval-64.json" | tee "$out/summary.md"
