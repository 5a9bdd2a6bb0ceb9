#!/usr/bin/env python3
"""The canary checkpoint for `miascan exposure` (Carlini et al. 2019, "The Secret Sharer"):
a tiny Llama (the 512-token tokenizer of tests/data/golden/tiny) trained with transformers on
the 60 member passages of tiny/passages.jsonl, 100 lines of the template with random fills
(so that the model learns the template's shape, not a fill), and inserted canaries: two
secrets each for 1, 2, 4, 8 and 16 insertions. Twenty control secrets are drawn the same
way and never inserted: under the null they are random fills, so their exposure p-values
must be uniform.

    ~/.cache/miascan/peers-venv/bin/python scripts/make-canary-model.py

Writes tests/data/canary/: config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, and canaries.json (template, secrets with their insertion counts,
controls). Everything from a fixed seed.
"""
import json, os, random, shutil, sys

import torch
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TINY = os.path.join(ROOT, "tests/data/golden/tiny")
OUT = os.path.join(ROOT, "tests/data/canary")
TEMPLATE = "my account number is {digits:6}"
REPEATS = [1, 2, 4, 8, 16]
EPOCHS = 20

torch.set_num_threads(2)
rng = random.Random(0)
fill = lambda: "".join(rng.choice("0123456789") for _ in range(6))
text = lambda digits: TEMPLATE.replace("{digits:6}", digits)
used = set()


def fresh():
    while True:
        f = fill()
        if f not in used:
            used.add(f)
            return f


canaries = [{"secret": text(fresh()), "insertions": r} for r in REPEATS for _ in range(2)]
controls = [text(fresh()) for _ in range(20)]
noise = [text(fresh()) for _ in range(100)]

tok = Tokenizer.from_file(os.path.join(TINY, "tokenizer.json"))
encode = lambda s: tok.encode(s, add_special_tokens=False).ids
passages = [json.loads(l) for l in open(os.path.join(TINY, "passages.jsonl"))]
data = [p["text"] for p in passages if p["member"]] + noise
data += [c["secret"] for c in canaries for _ in range(c["insertions"])]
examples = [encode(s) for s in data]

cfg = AutoConfig.for_model(
    "llama", vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
    bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=True,
    rms_norm_eps=1e-6, rope_theta=10000.0)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
model.train()
for epoch in range(EPOCHS):
    order = list(range(len(examples)))
    rng.shuffle(order)
    for s in range(0, len(order), 8):
        batch = [examples[i] for i in order[s:s + 8]]
        n = max(len(b) for b in batch)
        ids = torch.tensor([b + [0] * (n - len(b)) for b in batch])
        labels = torch.tensor([b + [-100] * (n - len(b)) for b in batch])
        mask = torch.tensor([[1] * len(b) + [0] * (n - len(b)) for b in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"epoch {epoch}: loss {loss.item():.3f}", file=sys.stderr)
model.eval()
os.makedirs(OUT, exist_ok=True)
model.save_pretrained(OUT, safe_serialization=True)
os.remove(os.path.join(OUT, "generation_config.json"))  # not read by miascan
shutil.copy(os.path.join(TINY, "tokenizer.json"), OUT)
with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
    json.dump({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
               "add_bos_token": False, "tokenizer_class": "PreTrainedTokenizerFast"}, f)
with open(os.path.join(OUT, "canaries.json"), "w") as f:
    json.dump({"template": TEMPLATE, "canaries": canaries, "controls": controls,
               "noise_fills": len(noise), "epochs": EPOCHS}, f, indent=1)
print("→", OUT)
