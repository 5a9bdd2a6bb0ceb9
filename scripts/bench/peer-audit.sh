#!/usr/bin/env bash
# The fine-tune audit as the llama.cpp peer computes it, written as miascan score records so
# that `miascan eval --scored` evaluates the peer's own log-probs with miascan's statistics.
# This is how tests/data/finetune-llamacpp.jsonl was made (the README's "Reproducing the
# peer's figures" section uses it).
#
# usage: scripts/bench/peer-audit.sh [OUT.jsonl]    (default: tests/data/finetune-llamacpp.jsonl)
#   Needs the peers' venv (../shared/peers/setup.sh; on CPUs reporting AMX, build
#   llama-cpp-python with scripts/fetch/setup-peers.sh instead) and the SmolLM2 model
#   (scripts/fetch/fetch-models.sh smollm2).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-tests/data/finetune-llamacpp.jsonl}
py=${PEERS_PY:-$HOME/.cache/miascan/peers-venv/bin/python}
cache=${MIASCAN_MODELS:-$HOME/.cache/miascan/models}
target=../shared/finetune/finetuned.gguf
base=$cache/SmolLM2-135M-Instruct.Q4_1.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat ../shared/finetune/members.jsonl ../shared/finetune/nonmembers.jsonl >"$tmp/pool.jsonl"
"$py" ../shared/peers/peer_llamacpp.py "$target" "$tmp/pool.jsonl" "$tmp/target.jsonl" --threads "${THREADS:-2}"
"$py" ../shared/peers/peer_llamacpp.py "$base" "$tmp/pool.jsonl" "$tmp/base.jsonl" --threads "${THREADS:-2}"
python3 - "$tmp" "$target" "$base" "$out" <<'PY'
import hashlib, json, math, sys
tmp, target, base, out = sys.argv[1:5]
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()[:16]
pool = [json.loads(l) for l in open(f"{tmp}/pool.jsonl")]
members = {json.loads(l)["id"] for l in open("../shared/finetune/members.jsonl")}
t = [json.loads(l) for l in open(f"{tmp}/target.jsonl")]
b = [json.loads(l) for l in open(f"{tmp}/base.jsonl")]
model = {"name": "finetuned.gguf (llama.cpp peer)", "sha256": sha(target), "compute": "llama.cpp", "device": "cpu"}
ref = {"name": "SmolLM2-135M-Instruct.Q4_1.gguf (llama.cpp peer)", "sha256": sha(base), "compute": "llama.cpp", "device": "cpu"}
with open(out, "w") as w:
    for p, rt, rb in zip(pool, t, b):
        assert rt["index"] == rb["index"]
        lt, lb = rt["token_logprobs"], rb["token_logprobs"]
        assert len(lt) == len(lb)
        d = [x - y for x, y in zip(lt, lb)]
        w.write(json.dumps({
            "id": p["id"], "n_tokens": rt["tokens"], "n_scored": len(lt),
            "scores": {"neg_loss": -rt["loss"], "mink_0.2": rt["mink_0.2"], "minkpp_0.2": rt["minkpp_0.2"],
                       "zlib": rt["zlib"], "base_neg_loss": -rb["loss"], "ref": rb["loss"] - rt["loss"],
                       "ref_llr": sum(d) / math.sqrt(len(d))},
            "model": model, "reference": ref, "member": p["id"] in members}) + "\n")
print(f"wrote {out}")
PY
