#!/usr/bin/env bash
# Runs each fuzz target (fuzz/README.md) for SECONDS (default 300) and prints its
# executions, paths found and unique crashes. Needs `cargo install cargo-afl`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-300}
cargo afl build --release -q
for t in gguf tokenizer_json inputs; do
  rm -rf "out/$t"; mkdir -p out
  AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
    cargo afl fuzz -i "seeds/$t" -o "out/$t" -V "$secs" "target/release/$t" >"out-$t.log" 2>&1 || true
  s=out/$t/default/fuzzer_stats
  if [ -f "$s" ]; then
    printf '%-15s executions %s  corpus %s  unique crashes %s  hangs %s\n' "$t" \
      "$(awk -F: '/^execs_done/{gsub(/ /,"",$2);print $2}' "$s")" \
      "$(awk -F: '/^corpus_count/{gsub(/ /,"",$2);print $2}' "$s")" \
      "$(awk -F: '/^saved_crashes/{gsub(/ /,"",$2);print $2}' "$s")" \
      "$(awk -F: '/^saved_hangs/{gsub(/ /,"",$2);print $2}' "$s")"
  else
    echo "$t: no stats (see fuzz/out-$t.log)"
  fi
done
