#!/usr/bin/env python3
"""A small OpenAI-protocol server of prompt log-probabilities for miascan's tests and
benchmarks: a real llama.cpp forward (llama-cpp-python's low-level API: `eval` over the
prompt, then the logits of every position), answered in the two forms servers use:

- vLLM's `prompt_logprobs: K` (with `prompt_token_ids`): per prompt position a map from
  token id to {logprob, rank, decoded_token} holding the prompt's token and the top K,
  ranks over the whole vocabulary, the first position null;
- the OpenAI completions `echo: true, logprobs: K`: tokens, token_logprobs, top_logprobs,
  text_offset, prompt and generated tokens together (`return_tokens_as_token_ids` renders
  tokens as "token_id:N", as vLLM does).

Position i is scored with the distribution computed at position i-1 (the one that predicts
it): llama-cpp-python's own server pairs them one position off, which is why this one
exists. Log-softmax in float64 over the float32 logits. One generated token (the argmax) is
appended in the echo form, as a server with max_tokens 1 does.

usage: logprobs-server.py --model NAME=FILE.gguf [--model NAME2=FILE2.gguf] [--port P]
       (the python of a venv with llama-cpp-python and numpy; scripts/fetch/setup-llama-server.sh)
The port actually bound is printed on stdout as "listening on PORT".
"""
import argparse
import ctypes
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import llama_cpp


class Model:
    def __init__(self, name, path, n_ctx):
        self.name = name
        self.llm = llama_cpp.Llama(model_path=path, logits_all=True, n_ctx=n_ctx,
                                   n_batch=512, verbose=False, seed=0)
        self.lock = threading.Lock()
        self.n_ctx = n_ctx
        self.pieces = {}

    def raw_piece(self, t):
        """The token's bytes as the vocabulary stores them. (`Llama.detokenize` cleans up
        spaces the way the model's tokenizer config asks, so its pieces do not add up to
        the text.)"""
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self.llm._model.vocab, t, buf, 256, 0, True)
        return buf.raw[:n]

    def piece(self, t):
        p = self.pieces.get(t)
        if p is None:
            p = self.pieces[t] = self.raw_piece(t).decode("utf-8", errors="replace")
        return p

    def forward(self, prompt):
        """ids (BOS as the vocabulary says, special strings as text) and float64 log-softmax
        rows: row i is the distribution after ids[..=i]."""
        if isinstance(prompt, str):
            ids = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        else:
            ids = [int(t) for t in prompt]
        if len(ids) > self.n_ctx - 1:
            raise ValueError(f"prompt of {len(ids)} tokens over the context {self.n_ctx - 1}")
        with self.lock:
            self.llm.reset()
            self.llm.eval(ids)
            logits = np.array(self.llm.scores[: len(ids)], dtype=np.float64)
        m = logits.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        return ids, logits - lse


def top_k(row, k):
    idx = np.argpartition(-row, k)[:k] if k < len(row) else np.arange(len(row))
    return sorted(idx.tolist(), key=lambda i: -row[i])


def prompt_logprobs_choice(model, index, prompt, k):
    ids, lp = model.forward(prompt)
    n = len(ids)
    rows = lp[: n - 1]
    actual = rows[np.arange(n - 1), ids[1:]]
    # ranks over the whole vocabulary, for every position at once
    ranks = (rows > actual[:, None]).sum(axis=1) + 1
    if k == 1:
        tops = rows.argmax(axis=1)[:, None]
    else:
        tops = np.argsort(-rows, axis=1)[:, :k]
    positions = [None]
    for i in range(1, n):
        t = ids[i]
        entry = {str(t): {"logprob": float(actual[i - 1]), "rank": int(ranks[i - 1]),
                          "decoded_token": model.piece(t)}}
        for j in tops[i - 1].tolist():
            if str(j) not in entry:
                entry[str(j)] = {"logprob": float(rows[i - 1, j]),
                                 "rank": int((rows[i - 1] > rows[i - 1, j]).sum()) + 1,
                                 "decoded_token": model.piece(j)}
        positions.append(entry)
    return {"index": index, "text": model.piece(int(np.argmax(lp[-1]))), "logprobs": None,
            "finish_reason": "length", "prompt_logprobs": positions, "prompt_token_ids": ids}


def echo_choice(model, index, prompt, k, as_ids):
    ids, lp = model.forward(prompt)
    gen = int(np.argmax(lp[-1]))
    render = (lambda t: f"token_id:{t}") if as_ids else model.piece
    tokens, values, tops, offsets = [], [], [], []
    # text_offset: the characters of the text before the token, counted over the bytes of
    # the tokens before it (a character split over tokens counts once it is complete); a
    # BOS at the start is not text
    raw = b""
    for i, t in enumerate(ids + [gen]):
        tokens.append(render(t))
        offsets.append(len(raw.decode("utf-8", errors="ignore")))
        if not (i == 0 and isinstance(prompt, str) and not prompt.encode().startswith(model.raw_piece(t))):
            raw += model.raw_piece(t)
        if i == 0:
            values.append(None)
            tops.append(None)
            continue
        row = lp[i - 1] if i < len(ids) else lp[len(ids) - 1]
        values.append(float(row[t]))
        tops.append({render(j): float(row[j]) for j in top_k(row, k)} | {render(t): float(row[t])})
    text = (prompt if isinstance(prompt, str) else "") + model.piece(gen)
    return {"index": index, "text": text, "finish_reason": "length",
            "logprobs": {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops,
                         "text_offset": offsets}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    models = {}

    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self.reply(200, {"object": "list", "data": [
                {"id": n, "object": "model", "owned_by": "miascan-test", "max_model_len": m.n_ctx}
                for n, m in self.models.items()]})
        else:
            self.reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        try:
            n = int(self.headers.get("Content-Length", "0"))
            req = json.loads(self.rfile.read(n))
        except Exception as e:  # noqa: BLE001
            return self.reply(400, {"error": {"message": f"bad request body: {e}"}})
        if self.path.rstrip("/") != "/v1/completions":
            return self.reply(404, {"error": {"message": f"no route {self.path}"}})
        name = req.get("model")
        model = self.models.get(name) if name else next(iter(self.models.values()))
        if model is None:
            return self.reply(404, {"error": {"message": f"model {name!r} not served"}})
        prompt = req.get("prompt")
        if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and isinstance(prompt[0], int)):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt:
            prompts = prompt
        else:
            return self.reply(400, {"error": {"message": "prompt: a string, a list of strings, ids or lists of ids"}})
        try:
            if req.get("prompt_logprobs") is not None:
                k = int(req["prompt_logprobs"])
                choices = [prompt_logprobs_choice(model, i, p, k) for i, p in enumerate(prompts)]
            elif req.get("echo") and req.get("logprobs") is not None:
                k = int(req["logprobs"])
                as_ids = bool(req.get("return_tokens_as_token_ids"))
                choices = [echo_choice(model, i, p, k, as_ids) for i, p in enumerate(prompts)]
            else:
                return self.reply(400, {"error": {"message": "this test server answers prompt_logprobs or echo+logprobs only"}})
        except ValueError as e:
            return self.reply(400, {"error": {"message": str(e)}})
        self.reply(200, {"id": "cmpl-test", "object": "text_completion", "model": model.name,
                         "choices": choices,
                         "usage": {"prompt_tokens": 0, "completion_tokens": len(choices)}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="NAME=FILE.gguf")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--n-ctx", type=int, default=2048)
    a = ap.parse_args()
    for spec in a.model:
        name, _, path = spec.partition("=")
        Handler.models[name] = Model(name, path, a.n_ctx)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print(f"listening on {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
