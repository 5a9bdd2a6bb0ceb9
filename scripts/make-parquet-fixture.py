#!/usr/bin/env python3
"""Writes tests/data/rows.parquet with pyarrow (the writer Hugging Face datasets use):
snappy-compressed, two row groups, columns id (string), text (string), member (bool),
views (int64, not read by miascan); row 3 has a null text.

usage: python3 scripts/make-parquet-fixture.py   (needs `pip install pyarrow`)
"""
import pathlib
import pyarrow as pa
import pyarrow.parquet as pq

out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "rows.parquet"
table = pa.table({
    "id": ["a1", "a2", "a3", "a4"],
    "text": ["The ferry leaves at noon.", "Tides turn twice a day.", None,
             "<script>alert(1)</script> is text here."],
    "member": [True, False, True, False],
    "views": [10, 20, 30, 40],
})
pq.write_table(table, out, compression="snappy", row_group_size=2)
print(out)
