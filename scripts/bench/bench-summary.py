#!/usr/bin/env python3
"""The figures of one model's scripts/bench/bench.sh run, from its log of readings (one JSON
object per line, in the order they were taken):

- {"kind": "miascan", "threads", "s", "label", "rss_kib"}: one `miascan score` run's wall
  time ("load": a one-passage run; "round": an interleaved run between two limit readings;
  "one-thread"; "before-PEER": the run a peer is compared with);
- {"kind": "limit", "gemm_gflops", "fma_peak_gflops", "gflop_per_token", ...}: one
  examples/f32_limit reading;
- {"kind": "tokens", "tokens"}: the tokens one run scored;
- {"kind": "peer", "name", "tokens", "load_s", "score_s", "tokens_per_s"}: one peer run.

Every ratio is taken between neighbours in the log, never between readings minutes apart,
because these machines swing by up to 2x within the hour (see scripts/bench/bench.sh).
"""
import json
import statistics
import sys


def main(path):
    log = [json.loads(line) for line in open(path) if line.strip()]
    tokens = next(r["tokens"] for r in log if r["kind"] == "tokens")
    runs = [r for r in log if r["kind"] == "miascan"]
    load = min(r["s"] for r in runs if r["label"] == "load")
    limits = [r for r in log if r["kind"] == "limit"]
    # FLOPs per token from a reading that knew this run's context
    gflop = limits[-1]["gflop_per_token"]

    def rate(run, with_load=False):
        s = run["s"] if with_load else max(run["s"] - load, 1e-9)
        return tokens / s

    # each round: its tokens/s without load against the higher of its neighbouring readings
    rounds, fractions, peaks = [], [], []
    for i, r in enumerate(log):
        if r["kind"] != "miascan" or r["label"] != "round":
            continue
        before = next(x for x in reversed(log[:i]) if x["kind"] == "limit")
        after = next(x for x in log[i + 1 :] if x["kind"] == "limit")
        gemm = max(before["gemm_gflops"], after["gemm_gflops"])
        fma = max(before["fma_peak_gflops"], after["fma_peak_gflops"])
        rounds.append(r)
        fractions.append(rate(r) / (gemm / gflop))
        peaks.append(rate(r) / (fma / gflop))
    median_run = sorted(rounds, key=lambda r: r["s"])[len(rounds) // 2]
    with_load, without = rate(median_run, True), rate(median_run)
    rss = max(r["rss_kib"] for r in rounds) / 1048576

    print(f"{tokens} tokens; load {load:.2f} s (fastest of three one-passage runs)")
    print(
        "f32 limit, GEMM at the model's shapes (GFLOP/s), reading by reading: "
        + ", ".join(f"{x['gemm_gflops']:.1f}" for x in limits)
        + f"; FMA peak {max(x['fma_peak_gflops'] for x in limits):.1f}; {gflop:.3f} GFLOP per token"
    )
    print(
        "miascan, 2 threads, round by round: "
        + ", ".join(
            f"{rate(r):.1f} tokens/s = {100 * f:.0f}%" for r, f in zip(rounds, fractions)
        )
        + " of the limit beside it"
    )
    print(
        f"miascan, 2 threads (median round): {with_load:.1f} tokens/s with load, {without:.1f} without"
    )
    print(
        f"fraction of the f32 limit (median of the rounds): {100 * statistics.median(fractions):.0f}%"
        f" (range {100 * min(fractions):.0f}-{100 * max(fractions):.0f}%);"
        f" of the FMA peak: {100 * statistics.median(peaks):.0f}%"
    )
    one = [r for r in runs if r["label"] == "one-thread"]
    if one:
        print(
            f"miascan, 1 thread: {rate(one[0]):.1f} tokens/s without load;"
            f" 2 threads / 1 thread = {without / rate(one[0]):.2f}x (median round)"
        )
    print(f"peak RSS: {rss:.2f} GiB")
    for i, r in enumerate(log):
        if r["kind"] != "peer":
            continue
        mine = next(
            x
            for x in reversed(log[:i])
            if x["kind"] == "miascan" and x["label"] == f"before-{r['name']}"
        )
        tw = r["tokens"] / (r["load_s"] + r["score_s"])
        two = r["tokens_per_s"]
        print(
            f"{r['name']:<14} {tw:7.1f} tokens/s with load, {two:7.1f} without;"
            f" miascan beside it {rate(mine, True):.1f} / {rate(mine):.1f}:"
            f" miascan/peer = {rate(mine, True) / tw:.2f}x with load,"
            f" {rate(mine) / two:.2f}x without"
        )


if __name__ == "__main__":
    main(sys.argv[1])
