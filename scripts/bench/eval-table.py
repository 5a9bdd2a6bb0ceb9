#!/usr/bin/env python3
"""A Markdown table of `miascan eval --json` results side by side: every score's AUROC and
TPR at 1% FPR with their 95% bootstrap intervals, and the blind baseline.

    python3 scripts/bench/eval-table.py LABEL=FILE.json [LABEL=FILE.json ...]
"""
import json, sys

cols = [a.split("=", 1) for a in sys.argv[1:]]
runs = [(label, json.load(open(path))) for label, path in cols]


def ci(x):
    return f" [{x[0]:.3f}, {x[1]:.3f}]" if x else ""


def cell(s):
    if s is None:
        return " | "
    a = next(a for a in s["at_fpr"] if abs(a["fpr"] - 0.01) < 1e-9)
    return f"{s['auroc']:.3f}{ci(s['auroc_ci'])} | {a['tpr']:.3f}{ci(a.get('tpr_ci'))}"


names = []
for _, r in runs:
    names += [s["score"] for s in r["scores"] if s["score"] not in names]
head = " | ".join(f"{label}: AUROC | TPR at 1% FPR" for label, _ in runs)
print(f"| score | {head} |")
print("|---|" + "---|---|" * len(runs))
for n in names:
    cells = [cell(next((s for s in r["scores"] if s["score"] == n), None)) for _, r in runs]
    print(f"| {n} | " + " | ".join(cells) + " |")
blind = " | ".join(
    f"**{r['blind_baseline_auroc']:.3f}** | " if r.get("blind_baseline_auroc") is not None else " | "
    for _, r in runs
)
print(f"| **blind baseline (text only)** | {blind} |")
n = [f"{label}: {r['scores'][0]['n_members']} members / {r['scores'][0]['n_nonmembers']} non-members" for label, r in runs]
print()
print("; ".join(n) + f"; seed {runs[0][1].get('seed')}, {runs[0][1].get('bootstrap')} bootstrap resamples.")
