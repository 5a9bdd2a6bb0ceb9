#!/usr/bin/env bash
# The test command: fetches the real models and llama.cpp's tokenizer suite (idempotent, into
# the cache outside the repo),
# then runs every test in release mode (real-model tests need optimised code).
# usage: scripts/test.sh [cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch/fetch-models.sh all
scripts/fetch/fetch-vocabs.sh
cargo test --release --all-targets "$@"
