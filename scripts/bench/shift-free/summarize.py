#!/usr/bin/env python3
"""The shift-free benchmark's dataset-test table from run.sh's JSON files (Markdown, to
stdout); the score table is scripts/bench/eval-table.py's."""
import json, os, sys

out = sys.argv[1]

print("Dataset test, p-value against passages per set (members vs held-out; held-out vs held-out):")
print()
def cell(v):
    return v if isinstance(v, str) else f"{v:.2e}"


rows = {}
for e in (1, 4):
    for kind in ("dataset", "control"):
        d = json.load(open(os.path.join(out, f"{kind}-epoch-{e}.json")))
        for n, p in d["p_by_n"]:
            rows.setdefault(n, {})[(e, kind)] = p
        rows.setdefault("all", {})[(e, kind)] = d["p_value"]
        rows.setdefault("finding", {})[(e, kind)] = d["verdict"]["finding"]
print("| passages per set | 1 epoch: members vs held-out | held-out vs held-out | 4 epochs: members vs held-out | held-out vs held-out |")
print("|---|---|---|---|---|")
order = sorted(k for k in rows if isinstance(k, int)) + ["all", "finding"]
for n in order:
    r = rows[n]
    print(f"| {n} | " + " | ".join(cell(r.get((e, k), "")) for e in (1, 4) for k in ("dataset", "control")) + " |")
