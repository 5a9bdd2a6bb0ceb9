#!/usr/bin/env bash
# Throughput through a server, in one run on one machine: the llama.cpp test server
# (scripts/server/logprobs-server.py, SmolLM2-135M Q4_1) driven by miascan's remote engine and
# by a minimal Python client (scripts/bench/server-client.py) at the same concurrency
# (1, 4, 16) with the same requests (prompt_logprobs, 4 passages a request), interleaved per
# concurrency; then miascan's own engine on the same model and passages. Tokens/s are prompt
# tokens per second of wall time, the probe and model loading excluded for the clients
# (miascan's includes its one probe request).
#
# The test server evaluates one prompt at a time (llama.cpp behind a lock) and is slow (its
# per-position top-K and rank in numpy), so concurrency shows the client's overhead, not a
# server's batching: the ratio miascan / Python client is the figure (goal >= 0.95), and
# miascan's own CPU time (user + sys) per 1,000 tokens says how fast a server it could keep
# up with: its ceiling, tokens per CPU-second of the client.
#
# usage: scripts/bench/bench-server.sh [PASSAGES.jsonl]   (default: the golden corpus, 43
#   passages, 7.7k tokens). Needs scripts/fetch/setup-llama-server.sh and the models.
set -euo pipefail
cd "$(dirname "$0")/../.."
passages=${1:-tests/data/golden/corpus.jsonl}
py=${MIASCAN_LLAMA_PYTHON:-$HOME/.cache/miascan/llama-venv/bin/python}
model=${MIASCAN_MODELS:-$HOME/.cache/miascan/models}/SmolLM2-135M-Instruct.Q4_1.gguf
cargo build --release -q
bin=target/release/miascan
out=$(mktemp -d)
coproc SERVER { exec "$py" scripts/server/logprobs-server.py --model "smollm2=$model"; }
trap 'kill $SERVER_PID 2>/dev/null; rm -rf "$out"' EXIT
read -r line <&"${SERVER[0]}"
url="http://127.0.0.1:${line#listening on }/v1"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; passages: $passages"
tokens=$($bin score --model "$url" --scores neg_loss --no-lowercase "$passages" | python3 -c '
import json,sys; print(sum(json.loads(l)["n_tokens"] for l in sys.stdin))')
echo "prompt tokens: $tokens"
printf '%-12s %14s %14s %8s %22s\n' concurrency "miascan tok/s" "python tok/s" ratio "miascan CPU tok/s"
for c in 1 4 16; do
  s=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$out/cpu" $bin score --model "$url" --scores neg_loss \
    --no-lowercase --concurrency "$c" --prompts-per-request 4 "$passages" > "$out/m.jsonl"
  e=$(date +%s.%N)
  m=$(python3 -c "print(f'{$tokens / ($e - $s):.1f}')")
  cpu=$(awk -v t="$tokens" '{printf "%.0f", t / ($1 + $2 + 0.001)}' "$out/cpu")
  p=$("$py" scripts/bench/server-client.py "$url" "$passages" "$c" 4 | awk '{print $3}')
  r=$(python3 -c "print(f'{$m / $p:.3f}')")
  printf '%-12s %14s %14s %8s %22s\n' "$c" "$m" "$p" "$r" "$cpu"
done
s=$(date +%s.%N)
$bin score --scores neg_loss --no-lowercase "$passages" > "$out/l.jsonl"
e=$(date +%s.%N)
echo "miascan local engine (same model, f32, load included): $(python3 -c "print(f'{$tokens / ($e - $s):.1f}')") tok/s"
