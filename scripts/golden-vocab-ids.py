#!/usr/bin/env python3
"""llama.cpp's token ids for every causal vocabulary of its tokenizer suite, on the golden
corpus (43 passages: scripts, emoji, tabs, literal special tokens) and, for the three
vocabularies the suite ships without `.out` files (aquila, baichuan, gpt-neox), on the
suite's own test strings. Independent ground truth for tests/tokenizer_suite.rs.

Run with the peers venv (llama-cpp-python 0.3.36, scripts/setup-peers.sh) after
scripts/fetch-vocabs.sh:

    ~/.cache/miascan/peers-venv/bin/python scripts/golden-vocab-ids.py

Writes tests/data/vocab-ids/<vocab>.jsonl: {"id", "ids"} per text, ids as
`Llama(vocab_only=True).tokenize(text, add_bos=False, special=False)` gives them, i.e.
llama.cpp's `llama_tokenize` with add_special = false, parse_special = false.
"""
import glob, json, os, sys

import llama_cpp

cache = os.environ.get("MIASCAN_VOCABS", os.path.expanduser("~/.cache/miascan/vocabs"))
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out_dir = os.path.join(root, "tests/data/vocab-ids")
os.makedirs(out_dir, exist_ok=True)
corpus = [json.loads(l) for l in open(os.path.join(root, "tests/data/golden/corpus.jsonl"), encoding="utf-8")]
SEP = "\n__ggml_vocab_test__\n"
ENCODERS = {"bert-bge", "nomic-bert-moe"}


def suite_strings(path):
    raw = open(path, encoding="utf-8").read()
    out, pos = [], 0
    while pos < len(raw):
        nx = raw.find(SEP, pos)
        if nx < 0:
            out.append(raw[pos:])
            break
        out.append(raw[pos:nx])
        pos = nx + len(SEP)
    return out


for f in sorted(glob.glob(os.path.join(cache, "ggml-vocab-*.gguf"))):
    name = os.path.basename(f)[len("ggml-vocab-"):-len(".gguf")]
    if name in ENCODERS:
        continue
    llm = llama_cpp.Llama(model_path=f, vocab_only=True, verbose=False)
    texts = [(p["id"], p["text"]) for p in corpus]
    if not os.path.exists(f + ".out"):
        texts += [(f"suite{i:02d}", s) for i, s in enumerate(suite_strings(f + ".inp"))] if os.path.exists(f + ".inp") else []
    with open(os.path.join(out_dir, f"{name}.jsonl"), "w", encoding="utf-8") as w:
        for tid, text in texts:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            w.write(json.dumps({"id": tid, "ids": ids}) + "\n")
    print(f"{name}: {len(texts)} texts", file=sys.stderr)
