#!/usr/bin/env python3
"""The minimal client that scripts/bench/bench-server.sh measures miascan against: the
same prompt_logprobs requests (PER prompts each, the prompt's ids and log-probs read back)
sent with CONCURRENCY in flight by a thread pool, standard library only. Prints the prompt
tokens scored per second of wall time.

usage: server-client.py URL PASSAGES.jsonl CONCURRENCY [PER]
"""
import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def main():
    url, path, conc = sys.argv[1], sys.argv[2], int(sys.argv[3])
    per = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    texts = [json.loads(l)["text"] for l in open(path, encoding="utf-8") if l.strip()]
    model = json.load(urllib.request.urlopen(url + "/models"))["data"][0]["id"]
    chunks = [texts[i:i + per] for i in range(0, len(texts), per)]

    def one(chunk):
        body = json.dumps({"model": model, "prompt": chunk, "max_tokens": 1, "temperature": 0,
                           "prompt_logprobs": 1, "return_token_ids": True}).encode()
        req = urllib.request.Request(url + "/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        ans = json.load(urllib.request.urlopen(req, timeout=600))
        n = 0
        for c in ans["choices"]:
            ids = c["prompt_token_ids"]
            lps = [None] + [p[str(t)]["logprob"] for t, p in zip(ids[1:], c["prompt_logprobs"][1:])]
            n += len(lps)
        return n

    t = time.perf_counter()
    with ThreadPoolExecutor(conc) as ex:
        tokens = sum(ex.map(one, chunks))
    dt = time.perf_counter() - t
    print(f"{tokens} {dt:.3f} {tokens / dt:.1f}")


if __name__ == "__main__":
    main()
