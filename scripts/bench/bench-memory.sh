#!/usr/bin/env bash
# Memory and speed at a real model's size: writes (once, into the cache) a Llama-shaped
# model of ~1.07 B random weights as a Q8_0 GGUF and as a bf16 safetensors folder
# (examples/random_model.rs), then scores passages on each, reporting file size, peak RSS
# (and its ratio to the file: must stay within file + 25%), load time and tokens/s, for
# both weight residencies. Parity is checked on the trained models, not here.
#
# usage: scripts/bench/bench-memory.sh [PASSAGES.jsonl]   (default: 16 passages of tests/data)
# Needs the SmolLM2 GGUF (scripts/fetch/fetch-models.sh) for the GGUF's tokenizer; /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
models=${MIASCAN_MODELS:-$HOME/.cache/miascan/models}
fixtures=${MIASCAN_FIXTURES:-$HOME/.cache/miascan/fixtures}
threads=${THREADS:-2}
passages=${1:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if [ -z "$passages" ]; then
  passages=$out/passages.jsonl
  head -16 tests/data/golden/tiny/passages.jsonl >"$passages"
fi
cargo build --release -q --example random_model
cargo build --release -q
if [ ! -f "$fixtures/random-1b-q8_0.gguf" ] || [ ! -f "$fixtures/random-1b-bf16/model.safetensors" ]; then
  ./target/release/examples/random_model "$models/SmolLM2-135M-Instruct.Q4_1.gguf" \
    tests/data/golden/tiny/tokenizer.json "$fixtures"
fi
size() { du -b "$1" | cut -f1; }
run() { # label model weights
  local t0 t1
  /usr/bin/time -f "%e %M" -o "$out/load" ./target/release/miascan inspect "$2" >/dev/null
  /usr/bin/time -f "%e %M" -o "$out/time" ./target/release/miascan score --threads "$threads" \
    --no-lowercase --weights "$3" -m "$2" "$passages" >"$out/o.jsonl"
  python3 - "$1" "$3" "$(size "$2")" "$out/time" "$out/load" "$out/o.jsonl" <<'PY'
import json, sys
label, weights, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
total, rss_kib = map(float, open(sys.argv[4]).read().split())
load, _ = map(float, open(sys.argv[5]).read().split())
tok = sum(json.loads(l)["n_tokens"] for l in open(sys.argv[6]))
rss = rss_kib * 1024
print(f"{label:<22} --weights {weights:<8} file {size/2**30:.2f} GiB  peak RSS {rss/2**30:.2f} GiB "
      f"({rss/size:.2f}x file)  load {load:.1f} s  {tok} tokens  {tok/max(total-load,1e-9):.1f} tokens/s")
PY
}
run "random 1B Q8_0 GGUF" "$fixtures/random-1b-q8_0.gguf" stored
run "random 1B bf16 folder" "$fixtures/random-1b-bf16" stored
run "random 1B Q8_0 GGUF" "$fixtures/random-1b-q8_0.gguf" expanded
