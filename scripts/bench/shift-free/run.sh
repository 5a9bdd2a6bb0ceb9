#!/usr/bin/env bash
# The shift-free benchmark: every score's AUROC and TPR at 1% FPR (bootstrap 95% intervals)
# on members vs held-out passages of a model pretrained here from scratch on the member half
# (examples/pretrain_shift_free.rs), after 1 epoch and after 4; the blind baseline; and the
# dataset test's p-value against the number of passages, members vs held-out and held-out vs
# held-out (the control).
#
#   scripts/bench/shift-free/run.sh [OUT_DIR]      (default bench-results/shift-free)
#
# Uses the committed fixture tests/data/shift-free (passages, both checkpoints and the
# reference model, the tokenizer, the reference corpus's token frequencies, the ReCaLL and member prefixes);
# regenerate it with make-corpus.sh and the example (see tests/data/README.md). Needs the
# release binary (cargo build --release). ~3 min on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
data=$root/tests/data/shift-free
bin=${MIASCAN_BIN:-$root/target/release/miascan}
out=${1:-$root/bench-results/shift-free}
mkdir -p "$out"
lscpu | grep -m1 "Model name" | tee "$out/cpu.txt"
python3 - "$data/passages.jsonl" "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
held = [r for r in rows if not r["member"]]
def write(name, rs):
    with open(f"{sys.argv[2]}/{name}", "w") as w:
        w.writelines(json.dumps(r) + "\n" for r in rs)
write("members.jsonl", [r for r in rows if r["member"]])
write("held-out.jsonl", held)
write("held-out-a.jsonl", held[0::2])
write("held-out-b.jsonl", held[1::2])
PY
# the checkpoints' weights are kept gzipped (a tracked file stays under 2 MiB): expand them
# beside the results, each folder under its own name (its name and weights' hash are its
# identity, as trained)
for name in epoch-1 epoch-4 reference; do
  mkdir -p "$out/models/$name"
  cp "$data/$name/config.json" "$data/$name/tokenizer.json" "$out/models/$name/"
  gzip -dc "$data/$name/model.safetensors.gz" >"$out/models/$name/model.safetensors"
done
for epochs in 1 4; do
  model=$out/models/epoch-$epochs
  common=(-m "$model" --no-lowercase --k 0.1,0.2,0.5 --freq-table "$data/kjv.freq"
    --recall-prefix "$data/recall-prefix.txt" --member-prefix "$data/member-prefix.txt")
  # the reference model (the same architecture and tokenizer, 1 epoch on the reference
  # passages only) adds the reference and fine-tune scores
  /usr/bin/time -f "eval, epoch $epochs: %e s" "$bin" eval "${common[@]}" --label-field member \
    --reference "$out/models/reference" \
    --json "$out/eval-epoch-$epochs.json" "$data/passages.jsonl" > "$out/eval-epoch-$epochs.txt"
  "$bin" dataset-test "${common[@]}" --scores neg_loss,mink_0.2,minkpp_0.2,gapk_0.2,zlib,dcpdd \
    --suspect "$out/members.jsonl" --validation "$out/held-out.jsonl" \
    --json "$out/dataset-epoch-$epochs.json" > "$out/dataset-epoch-$epochs.txt"
  "$bin" dataset-test "${common[@]}" --scores neg_loss,mink_0.2,minkpp_0.2,gapk_0.2,zlib,dcpdd \
    --suspect "$out/held-out-a.jsonl" --validation "$out/held-out-b.jsonl" \
    --json "$out/control-epoch-$epochs.json" > "$out/control-epoch-$epochs.txt"
done
{
  python3 "$root/scripts/bench/eval-table.py" "1 epoch=$out/eval-epoch-1.json" "4 epochs=$out/eval-epoch-4.json"
  echo
  python3 "$root/scripts/bench/shift-free/summarize.py" "$out"
} | tee "$out/summary.md"
