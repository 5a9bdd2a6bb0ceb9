#!/usr/bin/env bash
# The shift-free benchmark's corpus: the King James Bible (public domain), from Debian's
# bible-kjv-text 4.38 (its text) and bible-kjv (the program that prints it), cut into
# passages of consecutive verses; 4,000 of them drawn at random: 2,000 members (the model is
# trained on them) and 2,000 held out, from the same text by a coin flip, so nothing but
# training tells them apart. The rest is the reference corpus (DC-PDD's token frequencies,
# ReCaLL's non-member prefix).
#
#   scripts/bench/shift-free/make-corpus.sh [OUT_DIR]   (default tests/data/shift-free)
#
# Needs apt-get (downloads two .deb files, ~2.5 MB; installs nothing) and python3. ~5 s.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=${1:-$root/tests/data/shift-free}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download bible-kjv-text=4.38 bible-kjv >/dev/null
for d in *.deb; do dpkg-deb -x "$d" x; done
sha256sum x/usr/lib/bible.data
x/usr/bin/bible -d x/usr/lib/bible.data -f "Gen1:1-Rev22:21" > kjv.txt
test "$(wc -l < kjv.txt)" -eq 31102
mkdir -p "$out"
python3 "$root/scripts/bench/shift-free/cut-passages.py" kjv.txt "$out"
