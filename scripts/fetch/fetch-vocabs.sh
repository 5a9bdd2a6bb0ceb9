#!/usr/bin/env bash
# Fetches llama.cpp's tokenizer test suite: the vocabulary-only GGUF files
# `models/ggml-vocab-*.gguf` with their `.inp` (test strings) / `.out` (llama.cpp's ids)
# pairs, from the source distribution of the PyPI package llama-cpp-python 0.3.36 (which
# vendors llama.cpp, MIT), into a cache outside the repository. Only downloaded, never built.
#
# usage: scripts/fetch/fetch-vocabs.sh
#
# Cache: $MIASCAN_VOCABS (default ~/.cache/miascan/vocabs). Idempotent: a cache made from the
# archive with the expected sha256 is kept.
set -euo pipefail

cache=${MIASCAN_VOCABS:-$HOME/.cache/miascan/vocabs}
version=0.3.36
sha=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
die() { echo "fetch-vocabs: $*" >&2; exit 1; }

if [ -f "$cache/SOURCE" ] && grep -q "$sha" "$cache/SOURCE"; then
  echo "$cache (present, from llama_cpp_python-$version.tar.gz sha256 ok)"
  exit 0
fi
command -v python3 >/dev/null || die "python3 is needed to download from PyPI"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "fetching llama-cpp-python==$version source from PyPI (77 MB, MIT; downloaded, not built)..." >&2
# pip reads an sdist's metadata through its build backend; with these three wheels in a
# throwaway venv that takes seconds (without them pip would first build cmake from source).
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check scikit-build-core cmake ninja \
  || die "could not install scikit-build-core, cmake, ninja from PyPI: are you offline?"
if ! PATH="$tmp/venv/bin:$PATH" "$tmp/venv/bin/pip" download -q --disable-pip-version-check \
    --no-deps --no-binary :all: --no-build-isolation -d "$tmp" "llama-cpp-python==$version" \
    >"$tmp/pip.log" 2>&1; then
  cat "$tmp/pip.log" >&2
  die "could not download llama-cpp-python==$version from PyPI: are you offline?"
fi
archive=$tmp/llama_cpp_python-$version.tar.gz
got=$(sha256sum "$archive" | cut -d' ' -f1)
[ "$got" = "$sha" ] || die "sha256 mismatch for $(basename "$archive"): got $got, want $sha"
mkdir -p "$tmp/x"
tar -xzf "$archive" -C "$tmp/x" --wildcards \
  "llama_cpp_python-$version/vendor/llama.cpp/models/ggml-vocab-*" \
  "llama_cpp_python-$version/vendor/llama.cpp/LICENSE"
rm -rf "$cache"; mkdir -p "$(dirname "$cache")"
mv "$tmp/x/llama_cpp_python-$version/vendor/llama.cpp/models" "$cache"
cp "$tmp/x/llama_cpp_python-$version/vendor/llama.cpp/LICENSE" "$cache/LICENSE-llama.cpp"
echo "llama_cpp_python-$version.tar.gz sha256 $sha vendor/llama.cpp/models" >"$cache/SOURCE"
echo "$cache (fetched: $(ls "$cache"/*.gguf | wc -l) vocabularies)"
