#!/usr/bin/env python3
"""Pictures for `sieve attn eval` output (matplotlib; run by the command or by hand).

    python3 scripts/plot_attn_eval.py EVAL_DIR

Reads EVAL_DIR/results.csv and EVAL_DIR/masks/*.csv and writes into EVAL_DIR:
  pareto_<method>.png            recall vs token density over the threshold sweep, one line per
                                 workload and length (the default setting starred)
  pareto_<workload>_L<L>.png     every method on one density-recall plane for one case
  masks_<workload>_L<L>.png      the selected block masks: methods x heads, each tile coloured by
                                 the share of its causal keys the pattern keeps (1 = whole block)
  equal_recall.md                per case and method, the token density needed for a mean recall
                                 of 0.90 / 0.95 / 0.99, interpolated linearly between the two
                                 sweep points around the target ("> max" when no point reaches it)
"""
import csv
import glob
import math
import os
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_points(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("length", "heads", "kv_heads", "head_dim", "is_default", "recall_rows"):
            r[k] = int(r[k])
        for k in ("density", "token_density", "recall_mean", "recall_min", "rel_error", "speedup",
                  "selector_share"):
            r[k] = float(r[k]) if r[k] != "" else math.nan
    return rows


def sort_key(r):
    try:
        return float(r["threshold"])
    except ValueError:
        return 0.0


def pareto_per_method(points, out):
    by_method = defaultdict(list)
    for p in points:
        by_method[p["method"]].append(p)
    for method, pts in by_method.items():
        fig, ax = plt.subplots(figsize=(6, 4.5))
        cases = sorted({(p["workload"], p["length"]) for p in pts})
        for wl, length in cases:
            sel = sorted([p for p in pts if p["workload"] == wl and p["length"] == length], key=sort_key)
            x = [p["token_density"] for p in sel]
            y = [p["recall_mean"] for p in sel]
            line, = ax.plot(x, y, marker="o", label=f"{wl} L={length}")
            for p in sel:
                if p["threshold"]:
                    ax.annotate(p["threshold"], (p["token_density"], p["recall_mean"]),
                                fontsize=6, xytext=(3, -8), textcoords="offset points")
                if p["is_default"]:
                    ax.plot([p["token_density"]], [p["recall_mean"]], marker="*", markersize=13,
                            color=line.get_color(), markeredgecolor="black")
        key = pts[0]["threshold_key"] or "defaults"
        ax.set_title(f"{method}: recall vs density over {key} (star = default)")
        ax.set_xlabel("token density (kept causal pairs / all)")
        ax.set_ylabel("recall (mean share of true softmax mass kept)")
        ax.set_xlim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"pareto_{method}.png"), dpi=120)
        plt.close(fig)


def pareto_per_case(points, out):
    cases = sorted({(p["workload"], p["length"]) for p in points})
    for wl, length in cases:
        pts = [p for p in points if p["workload"] == wl and p["length"] == length]
        fig, ax = plt.subplots(figsize=(6.5, 4.8))
        for method in sorted({p["method"] for p in pts}, key=lambda m: [p["method"] for p in pts].index(m)):
            sel = sorted([p for p in pts if p["method"] == method], key=sort_key)
            line, = ax.plot([p["token_density"] for p in sel], [p["recall_mean"] for p in sel],
                            marker="o", label=method)
            for p in sel:
                if p["is_default"]:
                    ax.plot([p["token_density"]], [p["recall_mean"]], marker="*", markersize=13,
                            color=line.get_color(), markeredgecolor="black")
        ax.set_title(f"{wl} L={length}: recall vs density (star = default)")
        ax.set_xlabel("token density")
        ax.set_ylabel("recall mean")
        ax.set_xlim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"pareto_{wl}_L{length}.png"), dpi=120)
        plt.close(fig)


MASK_RE = re.compile(r"^(?P<wl>.+)_L(?P<length>\d+)_(?P<method>[^_]+)_h(?P<head>\d+)\.csv$")


def masks(eval_dir, out, method_order):
    groups = defaultdict(dict)
    for path in glob.glob(os.path.join(eval_dir, "masks", "*.csv")):
        m = MASK_RE.match(os.path.basename(path))
        if not m:
            continue
        groups[(m["wl"], int(m["length"]))][(m["method"], int(m["head"]))] = path
    for (wl, length), files in sorted(groups.items()):
        methods = sorted({k[0] for k in files}, key=lambda x: method_order.get(x, 99))
        heads = sorted({k[1] for k in files})
        fig, axes = plt.subplots(len(methods), len(heads), squeeze=False,
                                 figsize=(2.2 * len(heads) + 0.8, 2.2 * len(methods)))
        cmap = matplotlib.colormaps["viridis"].copy()
        cmap.set_bad("#dddddd")
        for i, method in enumerate(methods):
            for j, head in enumerate(heads):
                ax = axes[i][j]
                ax.set_xticks([])
                ax.set_yticks([])
                path = files.get((method, head))
                if path is None:
                    continue
                grid = np.loadtxt(path, delimiter=",", ndmin=2)
                nq, nk = grid.shape
                # Tiles entirely above the diagonal (not causal) are grey.
                qb, kb = np.meshgrid(np.arange(nq), np.arange(nk), indexing="ij")
                shown = np.ma.masked_where(kb * nq > (qb + 1) * nk, grid)
                ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
                if i == 0:
                    ax.set_title(f"head {head}", fontsize=8)
                if j == 0:
                    ax.set_ylabel(method, fontsize=8)
        fig.suptitle(f"{wl} L={length}: kept share of each tile (rows = query blocks)", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"masks_{wl}_L{length}.png"), dpi=110)
        plt.close(fig)


def density_at(points, target):
    """Token density at which recall_mean reaches target along the sweep (sorted by density)."""
    pts = sorted(points, key=lambda p: p["token_density"])
    if pts and pts[0]["recall_mean"] >= target:
        return f"<= {pts[0]['token_density']:.3f}"
    for a, b in zip(pts, pts[1:]):
        if a["recall_mean"] < target <= b["recall_mean"]:
            t = (target - a["recall_mean"]) / (b["recall_mean"] - a["recall_mean"])
            return f"{a['token_density'] + t * (b['token_density'] - a['token_density']):.3f}"
    return "> max" if pts else "-"


def equal_recall(points, out, targets=(0.90, 0.95, 0.99)):
    lines = ["# Token density needed for a given mean recall (linear interpolation over the sweep)", ""]
    for wl, length in sorted({(p["workload"], p["length"]) for p in points}):
        pts = [p for p in points if p["workload"] == wl and p["length"] == length]
        lines += [f"## {wl} L={length}", "",
                  "| method | swept | " + " | ".join(f"recall {t:.2f}" for t in targets) + " |",
                  "|---|---|" + "---|" * len(targets)]
        seen = []
        for p in pts:
            if p["method"] not in seen:
                seen.append(p["method"])
        for method in seen:
            sel = [p for p in pts if p["method"] == method]
            swept = sel[0]["threshold_key"] or "-"
            lines.append(f"| {method} | {swept} | " +
                         " | ".join(density_at(sel, t) for t in targets) + " |")
        lines.append("")
    with open(os.path.join(out, "equal_recall.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot_attn_eval.py EVAL_DIR")
    eval_dir = sys.argv[1]
    points = read_points(os.path.join(eval_dir, "results.csv"))
    if not points:
        sys.exit(f"{eval_dir}/results.csv has no rows")
    order = {}
    for p in points:
        order.setdefault(p["method"], len(order))
    pareto_per_method(points, eval_dir)
    pareto_per_case(points, eval_dir)
    masks(eval_dir, eval_dir, order)
    equal_recall(points, eval_dir)
    print(f"plot_attn_eval: PNGs written to {eval_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
