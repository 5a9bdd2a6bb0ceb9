#!/usr/bin/env bash
# Throughput of `miascan score` against the peer scorers (../shared/peers), side by side in
# one run on the same passages, for SmolLM2-135M and Gemma 3 270M. Per model it prints:
# - the machine's f32 limit for the model (examples/f32_limit: FMA peak and candle's GEMM at
#   the model's shapes, as tokens/s) and miascan's fraction of it;
# - tokens/s of miascan (2 threads and 1 thread: thread scaling) and of both peers, with the
#   model load included and excluded, the same way for every side (miascan's load is the
#   wall time of the fastest of three runs on a one-passage file; the peers time their
#   load themselves);
# - ratios miascan / peer, and miascan's peak RSS.
#
# Why the runs are interleaved: the machines here swing (one hour on a 2-core Xeon read the
# GEMM limit anywhere from 103 to 266 GFLOP/s, and one reading once came out at half the
# next), so a ratio of two figures taken minutes apart measures the machine as much as the
# code. Each figure that is a ratio comes from neighbours instead: the limit is read
# between the ROUNDS (default 3) miascan runs, L M L M L M L, each run's fraction taken
# against the higher of its two neighbouring readings, and the median fraction reported
# beside every round's; each peer runs right after a miascan run, and its ratio is against
# that run. scripts/bench/bench-summary.py does the arithmetic from the log of every reading.
#
# usage: scripts/bench/bench.sh [PASSAGES.jsonl [N]]
#   default passages: the first N (default 64) rows of ../shared/wikimia/256.jsonl (16.7k
#   words) when present, else tests/data/golden/corpus.jsonl. Models from the cache
#   (scripts/fetch/fetch-models.sh). Peers need scripts/fetch/setup-peers.sh run once (venv in
#   ~/.cache/miascan/peers-venv, or $PEERS_PY); without them only miascan is measured.
#   MODELS="smollm2 gemma3" selects models; PEERS=0 skips the peers; ROUNDS=N sets the
#   number of interleaved miascan runs; BENCH_LOG=FILE keeps the log of readings.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${MIASCAN_MODELS:-$HOME/.cache/miascan/models}
py=${PEERS_PY:-$HOME/.cache/miascan/peers-venv/bin/python}
n=${2:-64}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ -n "${1:-}" ]; then
  passages=$1
elif [ -f ../shared/wikimia/256.jsonl ]; then
  passages=$out/passages.jsonl
  head -n "$n" ../shared/wikimia/256.jsonl | python3 -c '
import json, sys
for i, l in enumerate(sys.stdin):
    print(json.dumps({"id": f"wikimia256-{i}", "text": json.loads(l)["input"]}))' >"$passages"
else
  passages=tests/data/golden/corpus.jsonl
fi
echo '{"id": "one", "text": "One short passage."}' >"$out/one.jsonl"

cargo build --release -q
cargo build --release -q --example f32_limit
bin=./target/release/miascan
now() { date +%s.%N; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "machine: $cpu, $(nproc) cores; passages: $passages"

# one `miascan score` run on THREADS threads: its wall time is appended to the log as
# {"kind": "miascan", ...}, its rows left in $out/m.jsonl and its peak RSS in $out/rss
run_miascan() { # threads model file [label]
  local t0 t1
  t0=$(now)
  /usr/bin/time -o "$out/rss" -f %M $bin score --threads "$1" --no-lowercase -m "$2" "$3" >"$out/m.jsonl"
  t1=$(now)
  python3 -c "import json; print(json.dumps({'kind': 'miascan', 'threads': $1, 's': round($t1 - $t0, 3), 'label': '${4:-}', 'rss_kib': $(cat "$out/rss")}))" >>"$log"
}

# one reading of the f32 limit (its table on stderr kept in $out/limit-N.txt)
limits=0
read_limit() { # model [context]
  limits=$((limits + 1))
  ./target/release/examples/f32_limit "$1" --threads 2 ${2:+--context "$2"} \
    2>"$out/limit-$limits.txt" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["kind"]="limit"; print(json.dumps(r))' >>"$log"
}

rounds=${ROUNDS:-3}
for name in ${MODELS:-smollm2 gemma3}; do
  case $name in
    smollm2) model=$cache/SmolLM2-135M-Instruct.Q4_1.gguf ;;
    gemma3) model=$cache/gemma-3-270m-q4_k_m.gguf ;;
    *) echo "unknown model $name"; exit 2 ;;
  esac
  echo
  echo "== $(basename "$model")"
  log=$out/log-$name.jsonl
  : >"$log"
  # the load: the fastest of three one-passage runs (a single run once read 5.5 s here
  # against the usual 0.7 s, inflating the figure without load by 15%)
  for _ in 1 2 3; do run_miascan 2 "$model" "$out/one.jsonl" load; done
  # L M L M … L: the first reading has the default context (its GEMM rate does not depend on
  # it; the FLOPs per token, taken from the later readings, do)
  read_limit "$model"
  for r in $(seq "$rounds"); do
    run_miascan 2 "$model" "$passages" round
    if [ "$r" = 1 ]; then
      cp "$out/m.jsonl" "$out/m2.jsonl"
      # average number of earlier positions a token attends to, for the attention FLOPs
      ctx=$(python3 -c 'import json,sys; r=[json.loads(l)["n_tokens"] for l in open(sys.argv[1])]; print(sum(n*(n-1)/2 for n in r)/sum(r))' "$out/m2.jsonl")
      python3 -c 'import json,sys; print(json.dumps({"kind": "tokens", "tokens": sum(json.loads(l)["n_tokens"] for l in open(sys.argv[1]))}))' "$out/m2.jsonl" >>"$log"
    fi
    read_limit "$model" "$ctx"
  done
  run_miascan 1 "$model" "$passages" one-thread
  echo "   f32 limit, last reading:"
  sed 's/^/   /' "$out/limit-$limits.txt"

  if [ "${PEERS:-1}" != 0 ] && [ -x "$py" ]; then
    # the peers index an empty target list on one-token passages (llama.cpp's crashes on
    # it): they get the passages miascan scored at least one token of (same order)
    python3 - "$passages" "$out/m2.jsonl" "$out/peer-passages.jsonl" <<'PY'
import json, sys
src = [l for l in open(sys.argv[1]) if l.strip()]
rows = [json.loads(l) for l in open(sys.argv[2])]
with open(sys.argv[3], "w") as w:
    w.writelines(l for l, r in zip(src, rows) if r["n_scored"] > 0)
PY
    for peer in peer_hf peer_llamacpp; do
      # the miascan run this peer is compared with comes right before it
      run_miascan 2 "$model" "$passages" "before-$peer"
      line=$("$py" ../shared/peers/$peer.py "$model" "$out/peer-passages.jsonl" "$out/$peer.jsonl" --threads 2 2>/dev/null | tail -1) || { echo "   $peer failed"; continue; }
      python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["kind"]="peer"; r["name"]=sys.argv[2]; print(json.dumps(r))' "$line" "$peer" >>"$log"
    done
  elif [ "${PEERS:-1}" != 0 ]; then
    echo "   peers not set up ($py missing): run scripts/fetch/setup-peers.sh for the side-by-side figures"
  fi
  python3 scripts/bench/bench-summary.py "$log" | sed 's/^/   /'
  if [ -n "${BENCH_LOG:-}" ]; then cp "$log" "${BENCH_LOG%.jsonl}-$name.jsonl"; fi
done
