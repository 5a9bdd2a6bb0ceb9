#!/usr/bin/env python3
"""GPU throughput of `miascan score` against Hugging Face transformers on the same device,
the same model folder and the same token ids, for the first GPU run (scripts/gpu/gpu-check.sh).

The model is Llama-shaped with random weights, written here with transformers (no model
can be fetched on the device machine): `1b` (hidden 2048, 24 layers, SmolLM2's 49,152-entry
vocabulary) or `8b` (Llama 3 8B's shapes: hidden 4096, 32 layers, 8 kv heads, 128,256
entries), bf16 safetensors in shards, with the tiny checkpoints' tokenizer (ids < 512, so
every passage's tokens are in any vocabulary; the LM head still spans the whole one). Speed
does not depend on the weights' values; parity is checked on trained models
(scripts/gpu/gpu-parity.py).

Per size it prints, and writes to OUT.json: miascan tokens/s with and without its load
(load = the fastest of two one-passage runs, as scripts/bench/bench.sh does) in bf16, f16 and
f32 (f32 keeps the bf16 weights on the device and expands each matrix per use: the
bounded-memory mode), its peak GPU memory (nvidia-smi, every 100 ms, less the idle
figure), and transformers' tokens/s with and without its load, in bf16, one passage per
forward as miascan's peers do, the same per-token statistics (log-soft-max in f32, target
log-prob, mu, sigma).

usage: gpu-speed.py --bin MIASCAN --sizes 1b,8b [--passages N] [--budget SECONDS] [--out F]
       gpu-speed.py --bin MIASCAN --sizes test --device cpu   (tries the script, no GPU)
A size whose model would not be written inside the time left is skipped and said so.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, threading, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOKENIZER = os.path.join(ROOT, "tests/data/golden/tiny/tokenizer.json")
CORPUS = os.path.join(ROOT, "tests/data/golden/corpus.jsonl")
SIZES = {
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
               num_attention_heads=32, num_key_value_heads=4, vocab_size=49152),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=8, vocab_size=128256),
    # for trying the script without a GPU (--device cpu)
    "test": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=1000),
}
# seconds a size needs at least (write + three miascan runs + the peer), measured nowhere
# yet: a guess to skip a size rather than be cut off half-way
NEEDS = {"1b": 90, "8b": 300, "test": 10}
DEVICE = "cuda"
DEADLINE = float("inf")  # time.time() by which every miascan run must have ended


def log(*a):
    print(*a, flush=True)


class GpuMemory:
    """Peak `memory.used` (MiB) while running, sampled by nvidia-smi every 100 ms."""

    def __init__(self):
        self.peak = 0
        if shutil.which("nvidia-smi") is None:
            self.proc = None
            return
        self.proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
             "-lms", "100"], stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.peak = max(self.peak, int(line.split()[0]))
            except (ValueError, IndexError):
                pass

    def stop(self):
        if self.proc is None:
            return 0
        self.proc.terminate()
        return self.peak


def idle_memory():
    if shutil.which("nvidia-smi") is None:
        return 0
    p = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                       capture_output=True, text=True)
    return int(p.stdout.split()[0]) if p.returncode == 0 else 0


def write_model(size, path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(**SIZES[size], max_position_embeddings=4096, rms_norm_eps=1e-5,
                      rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=0,
                      eos_token_id=0, dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    # shards, as real checkpoints come (the test size too, to try the index path)
    shard = "200KB" if size == "test" else "4GB"
    model.save_pretrained(path, safe_serialization=True, max_shard_size=shard)
    shutil.copy(TOKENIZER, os.path.join(path, "tokenizer.json"))
    del model
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def passages(n, path):
    rows = [json.loads(l) for l in open(CORPUS)]
    with open(path, "w") as f:
        for i in range(n):
            r = rows[i % len(rows)]
            f.write(json.dumps({"id": f"p{i}", "text": r["text"]}) + "\n")


def miascan(binary, model, file, dtype, out_file, extra=()):
    """Wall seconds of one `miascan score` run, and its last error line (None if it ran)."""
    cmd = [binary, "score", "--no-lowercase", "--device", DEVICE, "--dtype", dtype,
           "-m", model, file, "-o", out_file, *extra]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=max(DEADLINE - t0, 1))
    except subprocess.TimeoutExpired:
        return time.time() - t0, "stopped at the budget's end"
    return time.time() - t0, (p.stderr.strip().splitlines() or [""])[-1] if p.returncode else None


def peer(model_dir, ids_per_passage):
    """transformers bf16 on cuda: (load s, score s) for the given token ids."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    t0 = time.time()
    lm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    lm = lm.to(DEVICE).eval()
    sync()
    load = time.time() - t0
    sink = 0.0
    with torch.inference_mode():
        # one warm-up forward (kernel selection), not timed
        lm(input_ids=torch.tensor([ids_per_passage[0]], device=DEVICE))
        sync()
        t0 = time.time()
        for ids in ids_per_passage:
            x = torch.tensor([ids], device=DEVICE)
            logits = lm(input_ids=x).logits[0, :-1].float()
            lp = F.log_softmax(logits, -1)
            p = lp.exp()
            tok = lp.gather(-1, x[0, 1:, None])[:, 0]
            mu = (p * lp).sum(-1)
            sigma = ((p * lp * lp).sum(-1) - mu * mu).clamp_min(0).sqrt()
            sink += float(tok.sum() + mu.sum() + sigma.sum())
        sync()
        score = time.time() - t0
    del lm
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return load, score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", default="1b,8b")
    ap.add_argument("--passages", type=int, default=64)
    ap.add_argument("--budget", type=float, default=420)
    ap.add_argument("--out")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to try the script")
    a = ap.parse_args()
    global DEVICE, DEADLINE
    DEVICE = a.device
    start = time.time()
    DEADLINE = start + a.budget
    results = []
    tmp = tempfile.mkdtemp(prefix="gpu-speed-")
    file = os.path.join(tmp, "passages.jsonl")
    one = os.path.join(tmp, "one.jsonl")
    passages(a.passages, file)
    passages(1, one)
    idle = idle_memory()
    for size in a.sizes.split(","):
        left = a.budget - (time.time() - start)
        if left < NEEDS[size]:
            log(f"{size}: skipped, {left:.0f} s left of the budget (needs ~{NEEDS[size]} s)")
            continue
        model = os.path.join(tmp, f"random-{size}")
        t0 = time.time()
        write_model(size, model)
        log(f"{size}: random bf16 model written in {time.time() - t0:.1f} s "
            f"({sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model)) / 2**30:.2f} GiB)")
        row = {"size": size, **SIZES[size]}
        for dtype in ("bf16", "f16", "f32") if DEVICE == "cuda" else ("f32",):
            out = os.path.join(tmp, f"m-{size}-{dtype}.jsonl")
            loads = []
            for _ in range(2):
                s, err = miascan(a.bin, model, one, dtype, os.path.join(tmp, "one-out.jsonl"))
                loads.append(s)
                if err:
                    break
            if err:
                log(f"{size} {dtype}: miascan failed: {err}")
                row[f"miascan_{dtype}"] = {"error": err}
                continue
            mem = GpuMemory()
            s, err = miascan(a.bin, model, file, dtype, out)
            peak = mem.stop()
            if err:
                log(f"{size} {dtype}: miascan failed: {err}")
                row[f"miascan_{dtype}"] = {"error": err}
                continue
            recs = [json.loads(l) for l in open(out)]
            n = sum(r["n_tokens"] for r in recs)
            load = min(loads)
            r = {"tokens": n, "wall_s": round(s, 2), "load_s": round(load, 2),
                 "tokens_per_s": round(n / s, 1),
                 "tokens_per_s_without_load": round(n / max(s - load, 1e-9), 1),
                 "peak_gpu_mib": peak - idle}
            row[f"miascan_{dtype}"] = r
            log(f"{size} {dtype}: miascan {r['tokens_per_s']} tokens/s with load, "
                f"{r['tokens_per_s_without_load']} without (load {load:.2f} s, {n} tokens), "
                f"peak GPU memory {peak - idle} MiB")
        # the peer scores miascan's own token ids (`miascan tokenize`: the ids `score` uses,
        # no forward pass): the same work, no tokenizer difference
        p = subprocess.run([a.bin, "tokenize", "-m", model, file], capture_output=True, text=True)
        try:
            if p.returncode != 0:
                raise RuntimeError(f"miascan tokenize failed: {p.stderr.strip()}")
            ids = [json.loads(l)["ids"] for l in p.stdout.splitlines() if l.strip()]
            load, score = peer(model, ids)
            n = sum(len(i) for i in ids)
            row["transformers_bf16"] = {"tokens": n, "load_s": round(load, 2),
                                        "tokens_per_s": round(n / (load + score), 1),
                                        "tokens_per_s_without_load": round(n / score, 1)}
            log(f"{size} bf16: transformers {n / (load + score):.1f} tokens/s with load, "
                f"{n / score:.1f} without (load {load:.2f} s)")
            m = row.get("miascan_bf16", {})
            if "tokens_per_s" in m:
                log(f"{size} bf16: miascan / transformers = "
                    f"{m['tokens_per_s'] / row['transformers_bf16']['tokens_per_s']:.2f}x with load, "
                    f"{m['tokens_per_s_without_load'] / row['transformers_bf16']['tokens_per_s_without_load']:.2f}x without")
        except Exception as e:  # the peer's failure is reported, miascan's figures kept
            log(f"{size}: transformers failed: {e}")
            row["transformers_bf16"] = {"error": str(e)}
        results.append(row)
        shutil.rmtree(model, ignore_errors=True)
        if a.out:
            json.dump(results, open(a.out, "w"), indent=1)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
