#!/usr/bin/env python3
"""Goldens for the per-token statistics added for the fine-tune scores: the log-probability
of the top prediction, the entropy and the rank of the actual token, from transformers (f32
forward, f64 soft-max) on the tiny checkpoints of tests/data/golden/tiny — independent of
miascan.

    ~/.cache/miascan/peers-venv/bin/python scripts/golden-token-ranks.py [ARCH...]

Writes tests/data/golden/tiny/ARCH/golden-ranks.jsonl: per passage `ids` (the
tokenizer.json's, no BOS, as golden.jsonl) and per scored position `top1`
(max_v log p(v)), `entropy` (−Σ p log p), and `rank_lo`/`rank_hi`: 1 + the number of
logits above the actual token's logit by more than 1e-4, and 1 + the number within 1e-4 of
it or above (a rank computed in other float arithmetic lies between them; both are equal
unless there is a near-tie).
"""
import json, os, sys

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TINY = os.path.join(ROOT, "tests/data/golden/tiny")
ARCHS = sys.argv[1:] or ["llama", "qwen2", "gemma2"]
TIE = 1e-4

torch.set_num_threads(2)
passages = [json.loads(l) for l in open(os.path.join(TINY, "passages.jsonl"))]
tok = Tokenizer.from_file(os.path.join(TINY, "tokenizer.json"))

for arch in ARCHS:
    d = os.path.join(TINY, arch)
    model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    with open(os.path.join(d, "golden-ranks.jsonl"), "w") as w:
        for p in passages:
            ids = tok.encode(p["text"], add_special_tokens=False).ids
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
            lp = torch.log_softmax(logits, -1)
            tgt = torch.tensor(ids[1:])
            x = logits.gather(-1, tgt[:, None])
            # soft-capped models (gemma2): transformers' logits are already capped; the
            # cap is monotone, so ranks are the same on raw or capped logits
            row = {
                "id": p["id"],
                "ids": ids,
                "top1": lp.max(-1).values.tolist(),
                "entropy": (-(lp.exp() * lp).sum(-1)).tolist(),
                "rank_lo": (1 + (logits > x + TIE).sum(-1)).tolist(),
                "rank_hi": (1 + (logits > x - TIE).sum(-1) - 1).tolist(),
            }
            w.write(json.dumps(row) + "\n")
    print(arch, "→", os.path.join(d, "golden-ranks.jsonl"))
