#!/usr/bin/env python3
"""A second fine-tune audit, on another domain, to check that miascan's choices for fine-tune
audits (the scores, `selected_cv`'s selection rule) carry over to a fine-tune they were never
tuned on. ../shared/finetune fine-tunes SmolLM2 on paragraphs of the Python reference; this
one fine-tunes the same base, with the same recipe (AdamW, lr 3e-5, batch 8, 2 epochs, seed
1), on a random half of 400 Wikipedia excerpts (WikiMIA's 64-word split, labels ignored: the
halves are drawn at random, so the base model cannot tell them apart).

    ~/.cache/miascan/peers-venv/bin/python scripts/make-finetune-audit.py [WIKIMIA_64_JSONL]

Needs torch, transformers, gguf and accelerate (pip). Reads the base GGUF from the model cache
(scripts/fetch-models.sh) and writes to ~/.cache/miascan/audit-wiki/: base/ (the base,
dequantised to f32, as a checkpoint folder), target/ (the fine-tune), members.jsonl,
nonmembers.jsonl (fields id, text). Both folders share one tokenizer.json, so every
token-level score compares the same tokens. Model files stay out of the repository.
"""
import json, os, random, sys, time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

MODELS = os.path.expanduser("~/.cache/miascan/models")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.expanduser("~/.cache/miascan/audit-wiki")
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "../../shared/wikimia/64.jsonl")
SEED, EPOCHS, LR, BATCH = 1, 2, 3e-5, 8

torch.set_num_threads(os.cpu_count() or 2)
texts = [json.loads(l)["input"] for l in open(SRC)]
rng = random.Random(0)
rng.shuffle(texts)
pool = texts[:400]
members, nonmembers = pool[:200], pool[200:]

tok = AutoTokenizer.from_pretrained(MODELS, gguf_file=GGUF)
loaded = AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=GGUF, dtype=torch.float32)
# transformers marks a GGUF-loaded model as not serialisable: the same weights (exactly
# dequantised) in a plain model
config = loaded.config
if hasattr(config, "quantization_config"):
    del config.quantization_config
model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
model.load_state_dict(loaded.state_dict())
del loaded
os.makedirs(OUT, exist_ok=True)
for sub in ("base", "target"):
    tok.save_pretrained(os.path.join(OUT, sub))
model.save_pretrained(os.path.join(OUT, "base"))
for name, rows in (("members", members), ("nonmembers", nonmembers)):
    with open(os.path.join(OUT, f"{name}.jsonl"), "w") as f:
        for i, t in enumerate(rows):
            f.write(json.dumps({"id": f"{name[0]}{i:03}", "text": t}) + "\n")

torch.manual_seed(SEED)
pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
encoded = [tok(t, add_special_tokens=True)["input_ids"] for t in members]
opt = torch.optim.AdamW(model.parameters(), lr=LR)
model.train()
start = time.time()
for epoch in range(EPOCHS):
    order = list(range(len(encoded)))
    random.Random(SEED + epoch).shuffle(order)
    for b in range(0, len(order), BATCH):
        batch = [encoded[i] for i in order[b:b + BATCH]]
        n = max(map(len, batch))
        ids = torch.tensor([x + [pad] * (n - len(x)) for x in batch])
        mask = torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x in batch])
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"epoch {epoch + 1}: last batch loss {loss.item():.3f}", flush=True)
model.save_pretrained(os.path.join(OUT, "target"))
with open(os.path.join(OUT, "recipe.json"), "w") as f:
    json.dump({"base": GGUF, "source": os.path.basename(SRC), "seed": SEED, "epochs": EPOCHS,
               "lr": LR, "batch": BATCH, "members": 200, "nonmembers": 200,
               "train_seconds": round(time.time() - start)}, f, indent=1)
print("wrote", OUT)
