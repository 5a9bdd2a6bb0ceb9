#!/usr/bin/env bash
# Byte-identity of two miascan binaries' records on the golden corpus: both GGUF models
# (SmolLM2, Gemma 3) and every tiny checkpoint, with and without --token-logprobs.
# For refactors that promise "scores unchanged": build the base binary first (e.g. stash,
# `cargo build --release`, copy target/release/miascan aside), then
#   scripts/bench/identical.sh /tmp/miascan-base target/release/miascan
# Fields the newer binary adds (names given with --ignore a,b) are dropped before `cmp`.
set -euo pipefail
base=$1 new=$2 ignore=${4:-}
[[ ${3:-} == --ignore ]] || ignore=""
here=$(cd "$(dirname "$0")/../.." && pwd)
models=${MIASCAN_MODELS:-$HOME/.cache/miascan/models}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
strip() { [[ -z $ignore ]] && { cat; return; }
  python3 -c '
import json, sys
drop = [f for f in sys.argv[1].split(",") if f]
for line in sys.stdin:
    r = json.loads(line)
    for f in drop:
        r.pop(f, None)
    print(json.dumps(r, sort_keys=False))
' "$ignore"; }
runs=()
for m in "$models/SmolLM2-135M-Instruct.Q4_1.gguf" "$models/gemma-3-270m-q4_k_m.gguf"; do
  [[ -f $m ]] && runs+=("$m|$here/tests/data/golden/corpus.jsonl")
done
for d in "$here"/tests/data/golden/tiny/*/; do
  runs+=("$d|$here/tests/data/golden/tiny/passages.jsonl")
done
n=0
for run in "${runs[@]}"; do
  m=${run%%|*} input=${run#*|}
  for flag in "" --token-logprobs; do
    for bin in base new; do
      exe=$base; [[ $bin == new ]] && exe=$new
      "$exe" score --model "$m" $flag "$input" 2>/dev/null | strip >"$out/$bin.jsonl"
    done
    cmp -s "$out/base.jsonl" "$out/new.jsonl" || { echo "DIFFERENT: $m $flag"; diff <(head -c 2000 "$out/base.jsonl") <(head -c 2000 "$out/new.jsonl") | head; exit 1; }
    n=$((n + 1))
    echo "identical: $(basename "$m") ${flag:-scores} ($(wc -l <"$out/new.jsonl") records, $(sha256sum <"$out/new.jsonl" | cut -c1-12))"
  done
done
echo "$n runs identical"
