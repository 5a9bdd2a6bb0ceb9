#!/usr/bin/env python3
"""Cuts the King James Bible (one verse per line, "Ge1:1 In the beginning …") into passages
of consecutive verses of one chapter, each at least 250 characters (a chapter's last
passage may be shorter and is dropped when under 120), and draws the benchmark's sets with
a fixed seed:

- passages.jsonl: 4,000 passages {id, text, member}; member = a coin flip (2,000 each);
- reference.jsonl: every other passage {id, text} (the reference corpus).

    python3 cut-passages.py kjv.txt OUT_DIR
"""
import json, random, re, sys

src, out = sys.argv[1], sys.argv[2]
verse = re.compile(r"^([0-9]?[A-Za-z]+)(\d+):(\d+) (.*)$")
chapters = {}
order = []
for line in open(src, encoding="utf-8"):
    m = verse.match(line.rstrip("\n"))
    assert m, line
    key = (m.group(1), int(m.group(2)))
    if key not in chapters:
        chapters[key] = []
        order.append(key)
    chapters[key].append((int(m.group(3)), m.group(4)))

passages = []
for book, ch in order:
    cur, first = [], None
    for n, text in chapters[(book, ch)]:
        if not cur:
            first = n
        cur.append(text)
        if sum(len(t) + 1 for t in cur) >= 250:
            passages.append((f"{book}{ch}:{first}-{n}", " ".join(cur)))
            cur = []
    if cur and sum(len(t) + 1 for t in cur) >= 120:
        passages.append((f"{book}{ch}:{first}-{n}", " ".join(cur)))

rng = random.Random(20261207)
rng.shuffle(passages)
chosen, rest = passages[:4000], passages[4000:]
member = [True] * 2000 + [False] * 2000
rng.shuffle(member)
with open(f"{out}/passages.jsonl", "w", encoding="utf-8") as w:
    for (pid, text), m in zip(chosen, member):
        w.write(json.dumps({"id": pid, "text": text, "member": m}) + "\n")
with open(f"{out}/reference.jsonl", "w", encoding="utf-8") as w:
    for pid, text in rest:
        w.write(json.dumps({"id": pid, "text": text}) + "\n")
print(f"{len(passages)} passages: 4000 drawn (2000 members), {len(rest)} reference", file=sys.stderr)
