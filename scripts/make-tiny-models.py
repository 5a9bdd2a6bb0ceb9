#!/usr/bin/env python3
"""Tiny trained checkpoints of the architectures miascan added after ../shared/golden/tiny
(llama31: Llama with Llama 3.1 RoPE scaling, qwen3, gemma3_text, gemma2, olmo2, phi3), their goldens, and GGUF conversions of them (and of the
existing tiny qwen2) with their goldens. All ground truth comes from independent code:
transformers (f32 forward, f64 soft-max) and llama.cpp's convert_hf_to_gguf.py.

    ~/.cache/miascan/peers-venv/bin/python scripts/make-tiny-models.py LLAMA_CPP_DIR [ARCH...]

LLAMA_CPP_DIR: vendor/llama.cpp of the llama-cpp-python 0.3.36 source distribution (as
scripts/fetch-vocabs.sh downloads it; its convert_hf_to_gguf.py and gguf-py are used).

Per architecture, in tests/data/golden/tiny/ARCH/:
- config.json, model.safetensors, tokenizer.json: a 2-layer model (6 for Gemma 3; hidden 64) with the
  512-token tokenizer of ../shared/golden/tiny, trained from a fixed seed on the 60 member
  passages of tiny/passages.jsonl (members must score higher in `eval`);
- golden.jsonl: ids (the tokenizer.json's, no BOS) and transformers' per-token log-prob, mu,
  sigma, soft-max in f64 (the format of ../shared/golden/tiny);
- model-f32.gguf, model-q8_0.gguf: llama.cpp's converter output (its BPE pre-tokenizer named
  `gpt-2`, which is what this tokenizer's ByteLevel pre-tokenizer is; Phi-3's and Gemma 2's
  converters, which want a SentencePiece file, are given the same byte-level vocabulary);
- golden-q8_0.jsonl: the same statistics with the Q8_0 file's tensors dequantised by gguf-py
  and loaded into the transformers model (the F32 file holds the checkpoint's weights, so
  golden.jsonl is its golden).
"""
import json, math, os, shutil, subprocess, sys, zlib

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TINY = os.path.join(ROOT, "tests/data/golden/tiny")
LLAMA_CPP = os.path.abspath(sys.argv[1])
ARCHS = sys.argv[2:] or ["llama31", "qwen3", "gemma3_text", "gemma2", "olmo2", "phi3", "qwen2"]
sys.path.insert(0, os.path.join(LLAMA_CPP, "gguf-py"))
import gguf  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

torch.set_num_threads(2)
K = 0.2
COMMON = dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, head_dim=16,
              max_position_embeddings=512, bos_token_id=0, eos_token_id=0, pad_token_id=0,
              tie_word_embeddings=True)
CONFIGS = {
    # Llama 3.1's long-context RoPE scaling, with a short original context (64) so that
    # the scaled and blended frequencies all occur in a 16-dim head
    "llama31": dict(model_type="llama", rms_norm_eps=1e-6,
                    rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0,
                                         low_freq_factor=1.0, high_freq_factor=4.0,
                                         original_max_position_embeddings=64)),
    "qwen3": dict(model_type="qwen3", rms_norm_eps=1e-6, rope_theta=10000.0),
    "olmo2": dict(model_type="olmo2", rms_norm_eps=1e-6, rope_theta=10000.0),
    "phi3": dict(model_type="phi3", rms_norm_eps=1e-5, rope_theta=10000.0,
                 tie_word_embeddings=False, sliding_window=None),
    "gemma2": dict(model_type="gemma2", rms_norm_eps=1e-6, rope_theta=10000.0,
                   sliding_window=16, query_pre_attn_scalar=16,
                   hidden_activation="gelu_pytorch_tanh", attn_logit_softcapping=50.0,
                   final_logit_softcapping=30.0,
                   layer_types=["sliding_attention", "full_attention"]),
    "gemma3_text": dict(model_type="gemma3_text", rms_norm_eps=1e-6, rope_theta=1e6,
                        rope_local_base_freq=10000.0, sliding_window=16,
                        query_pre_attn_scalar=16, hidden_activation="gelu_pytorch_tanh",
                        num_hidden_layers=6,
                        # llama.cpp's default Gemma 3 pattern (no pattern key in the GGUF):
                        # five sliding-window layers, then a global one
                        layer_types=["sliding_attention"] * 5 + ["full_attention"]),
}

passages = [json.loads(l) for l in open(os.path.join(TINY, "passages.jsonl"))]
tok = Tokenizer.from_file(os.path.join(TINY, "tokenizer.json"))


def encode(text):
    return tok.encode(text, add_special_tokens=False).ids


def make(arch):
    out = os.path.join(TINY, arch)
    os.makedirs(out, exist_ok=True)
    kw = dict(COMMON)
    kw.update(CONFIGS[arch])
    mt = kw.pop("model_type")
    cfg = AutoConfig.for_model(mt, **kw)
    torch.manual_seed(0)
    # eager attention: the fused kernels ignore Gemma 2's score soft-capping
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32,
                                             attn_implementation="eager")
    members = [encode(p["text"]) for p in passages if p["member"]]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for step in range(300):
        batch = [members[(step * 8 + i) % len(members)] for i in range(8)]
        n = max(len(b) for b in batch)
        ids = torch.tensor([b + [0] * (n - len(b)) for b in batch])
        labels = torch.tensor([b + [-100] * (n - len(b)) for b in batch])
        mask = torch.tensor([[1] * len(b) + [0] * (n - len(b)) for b in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"{arch}: final training loss {loss.item():.3f}", file=sys.stderr)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(os.path.join(TINY, "tokenizer.json"), out)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
                   "add_bos_token": False, "tokenizer_class": "PreTrainedTokenizerFast"}, f)
    return model


def golden(model, path):
    with open(path, "w") as w:
        for p in passages:
            text = p["text"]
            ids = encode(text)
            row = {"id": p["id"], "ids": ids, "scored_from": 1,
                   "zlib_bytes": len(zlib.compress(text.encode("utf-8")))}
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
            lp = torch.log_softmax(logits, -1)
            pr = lp.exp()
            tgt = torch.tensor(ids[1:])
            t = lp.gather(-1, tgt[:, None])[:, 0]
            mu = (pr * lp).sum(-1)
            sigma = ((pr * lp * lp).sum(-1) - mu * mu).clamp_min(0).sqrt()
            t, mu, sigma = t.numpy(), mu.numpy(), sigma.numpy()
            k = max(1, int(len(t) * K))
            ll = float(t.mean())
            row.update(logprobs=t.tolist(), mu=mu.tolist(), sigma=sigma.tolist(), scores={
                "loss": -ll, "ppl": math.exp(-ll), "mink_0.2": float(np.sort(t)[:k].mean()),
                "minkpp_0.2": float(np.sort((t - mu) / sigma)[:k].mean()),
                "zlib": ll / row["zlib_bytes"]})
            w.write(json.dumps(row) + "\n")


CONVERT = r'''
import sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/gguf-py")
sys.argv = [sys.argv[1] + "/convert_hf_to_gguf.py"] + sys.argv[2:]
import conversion.base as base
# this tokenizer's pre-tokenizer is GPT-2's ByteLevel regex: name it for the converter,
# whose table of known tokenizers (by hash of their output) cannot know a test tokenizer
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
import conversion.phi as phi
phi.Phi3MiniModel.set_vocab = base.TextModel._set_vocab_gpt2
import conversion.gemma as gemma
gemma.Gemma2Model.set_vocab = base.TextModel._set_vocab_gpt2
import runpy
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def convert(arch, outtype):
    src = os.path.join(TINY, arch)
    dst = os.path.join(src, f"model-{outtype}.gguf")
    subprocess.run([sys.executable, "-c", CONVERT, LLAMA_CPP, src, "--outfile", dst,
                    "--outtype", outtype], check=True, stdout=subprocess.DEVNULL)
    return dst


def gguf_golden(arch, path, model, outtype):
    """The transformers model with its weights replaced by the GGUF's, dequantised."""
    r = gguf.GGUFReader(path)
    name = r.fields["general.architecture"].contents()
    arch_enum = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == name)
    names = gguf.get_tensor_name_map(arch_enum, model.config.num_hidden_layers)
    tensors = {t.name: t for t in r.tensors}
    sd = model.state_dict()
    new = {}
    for hf_name, v in sd.items():
        base_name, suffix = hf_name.rsplit(".", 1)
        g = names.get_name(base_name)
        if g is None and hf_name == "lm_head.weight":
            g = "output"  # tied: absent from the file, read from the embeddings below
        if g is None:
            raise SystemExit(f"{arch}: no GGUF name for {hf_name}")
        key = f"{g}.{suffix}"
        if key not in tensors:
            if hf_name == "lm_head.weight":
                key = "token_embd.weight"
            elif arch == "phi3" and ("qkv_proj" in hf_name or "gate_up_proj" in hf_name):
                raise SystemExit(f"{arch}: fused {hf_name} missing as {key}")
            else:
                raise SystemExit(f"{arch}: {key} ({hf_name}) is not in the GGUF")
        t = tensors[key]
        a = np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        if model.config.model_type in ("gemma2", "gemma3_text") and hf_name.endswith("norm.weight"):
            a = a - 1.0  # the converter stores Gemma's (1 + w) norm multipliers
        new[hf_name] = torch.tensor(a.reshape(v.shape))
    model.load_state_dict(new)
    golden(model, os.path.join(os.path.dirname(path), f"golden-{outtype}.jsonl"))


for arch in ARCHS:
    if arch in CONFIGS:
        model = make(arch)
        golden(model, os.path.join(TINY, arch, "golden.jsonl"))
    else:
        model = AutoModelForCausalLM.from_pretrained(os.path.join(TINY, arch),
                                                     torch_dtype=torch.float32,
                                                     attn_implementation="eager").eval()
    gen = os.path.join(TINY, arch, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    # the F32 file holds the checkpoint's own weights: golden.jsonl is its golden too
    convert(arch, "f32")
    if arch == "llama31":
        # llama.cpp permutes Llama's q/k rows, which the name-by-name golden below cannot
        # undo: the F32 file (the checkpoint's weights) is checked against golden.jsonl only
        continue
    p = convert(arch, "q8_0")
    fresh = AutoModelForCausalLM.from_pretrained(os.path.join(TINY, arch),
                                                 torch_dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    gguf_golden(arch, p, fresh, "q8_0")
    print(f"{arch}: done", file=sys.stderr)
