#!/usr/bin/env python3
"""How much a block pattern changes from one query block to the next.

Reads the mask files of `sieve attn eval` (masks/<workload>_L<len>_<method>_h<head>.csv: one row
per query block, one column per key block, the kept share of each tile) and prints, per method and
length, over the query blocks in the second half of each head (the long rows):

  density      kept causal tiles / causal tiles
  jaccard      |A & B| / |A | B| of the kept key blocks of two adjacent query blocks, over the keys
               both see (the diagonal of the later one left out)
  count_diff   |kept(i) - kept(i-1)| / kept(i): how far adjacent rows' walks differ in length

The GPU executor runs the CTAs of adjacent query blocks of one KV head together. Where their rows
differ (low jaccard, high count_diff) the CTAs walk different keys at different speeds, and the
L2 shares less between them (docs/cuda.md, "L2 behaviour on selector patterns").

  scripts/mask_row_stats.py eval/masks            every mask file in the folder
"""
import csv
import re
import sys
from collections import defaultdict
from pathlib import Path

NAME = re.compile(r"^(?P<workload>.+)_L(?P<length>\d+)_(?P<method>[^_]+)_h(?P<head>\d+)\.csv$")


def read_mask(path):
    with open(path, newline="") as f:
        return [[float(x) > 0 for x in row] for row in csv.reader(f) if row]


def row_stats(mask):
    n = len(mask)
    kept = [sum(r[: i + 1]) for i, r in enumerate(mask)]
    causal = n * (n + 1) // 2
    jac, diff = [], []
    for i in range(max(1, n // 2), n):
        a, b = mask[i][:i], mask[i - 1][:i]
        inter = sum(x and y for x, y in zip(a, b))
        union = sum(x or y for x, y in zip(a, b))
        jac.append(inter / union if union else 1.0)
        diff.append(abs(kept[i] - kept[i - 1]) / max(1, kept[i]))
    return sum(kept), causal, jac, diff


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0])
        print("usage: scripts/mask_row_stats.py MASK_FOLDER")
        sys.exit(0 if len(sys.argv) == 2 else 2)
    folder = Path(sys.argv[1])
    if not folder.is_dir():
        sys.exit(f"mask_row_stats: error: {folder} is not a folder")
    groups = defaultdict(lambda: [0, 0, [], []])
    for path in sorted(folder.glob("*.csv")):
        m = NAME.match(path.name)
        if not m:
            continue
        try:
            kept, causal, jac, diff = row_stats(read_mask(path))
        except ValueError as e:
            sys.exit(f"mask_row_stats: error: {path}: {e}")
        g = groups[(m["workload"], int(m["length"]), m["method"])]
        g[0] += kept
        g[1] += causal
        g[2] += jac
        g[3] += diff
    if not groups:
        sys.exit(f"mask_row_stats: error: no mask files (<workload>_L<len>_<method>_h<head>.csv) in {folder}")
    print(f"{'workload':<10} {'length':>7} {'method':<12} {'density':>8} {'jaccard':>8} {'count_diff':>10}")
    for (workload, length, method), (kept, causal, jac, diff) in sorted(groups.items()):
        mean = lambda v: sum(v) / len(v) if v else float("nan")
        print(f"{workload:<10} {length:>7} {method:<12} {kept / causal:>8.3f} {mean(jac):>8.3f} "
              f"{mean(diff):>10.3f}")


if __name__ == "__main__":
    main()
