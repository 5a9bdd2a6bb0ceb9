#!/usr/bin/env bash
# Throughput of `miascan score` against the peer scorers (../shared/peers), side by side in
# one run on the same passages. Figures: scored tokens per second, and ratios.
#
# usage: scripts/bench.sh [PASSAGES.jsonl] [MODEL.gguf]
#   default passages: tests/data/golden/corpus.jsonl; default model: SmolLM2 from the cache.
#   Peers need scripts/setup-peers.sh (or ../shared/peers/setup.sh) run once (venv in
#   ~/.cache/miascan/peers-venv, or
#   $PEERS_PY). Threads: $THREADS (default 2) for everyone.
set -euo pipefail
cd "$(dirname "$0")/.."
passages=${1:-tests/data/golden/corpus.jsonl}
cache=${MIASCAN_MODELS:-$HOME/.cache/miascan/models}
model=${2:-$cache/SmolLM2-135M-Instruct.Q4_1.gguf}
threads=${THREADS:-2}
py=${PEERS_PY:-$HOME/.cache/miascan/peers-venv/bin/python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release -q
now() { date +%s.%N; }

# miascan: one forward per passage (the lowercase score's second pass is off, as the peers
# do not compute it); the time includes loading the model.
t0=$(now)
./target/release/miascan score --threads "$threads" --no-lowercase -m "$model" "$passages" >"$out/miascan.jsonl"
t1=$(now)
ours=$(python3 - "$out/miascan.jsonl" "$t0" "$t1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tok = sum(r["n_tokens"] for r in rows)
print(f"{tok / (float(sys.argv[3]) - float(sys.argv[2])):.1f} {tok}")
PY
)
read -r ours_tps ntok <<<"$ours"
echo "miascan           $ours_tps tokens/s  ($ntok tokens, f32, load included)"

if [ -x "$py" ]; then
  # the peers index an empty target list on one-token passages (llama.cpp's crashes on it):
  # they get the passages miascan scored at least one token of (same order)
  python3 - "$passages" "$out/miascan.jsonl" "$out/peer-passages.jsonl" <<'PY'
import json, sys
src = [l for l in open(sys.argv[1]) if l.strip()]
rows = [json.loads(l) for l in open(sys.argv[2])]
with open(sys.argv[3], "w") as w:
    w.writelines(l for l, r in zip(src, rows) if r["n_scored"] > 0)
PY
  for peer in peer_hf peer_llamacpp; do
    line=$("$py" ../shared/peers/$peer.py "$model" "$out/peer-passages.jsonl" "$out/$peer.jsonl" --threads "$threads" 2>/dev/null | tail -1) || { echo "$peer failed"; continue; }
    tps=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["tokens_per_s"],1))' "$line")
    ratio=$(python3 -c "print(round($ours_tps / $tps, 2))")
    echo "$(printf '%-17s' "$peer") $tps tokens/s   miascan/peer = ${ratio}x"
  done
else
  echo "peers not set up ($py missing): run scripts/setup-peers.sh for the side-by-side figures"
fi
if [ -x /usr/bin/time ]; then
  echo "peak RSS of miascan (KiB): $(/usr/bin/time -f %M ./target/release/miascan score --threads "$threads" --no-lowercase -m "$model" "$passages" 2>&1 >/dev/null | tail -1)"
fi
