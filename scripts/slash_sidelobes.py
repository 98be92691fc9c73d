#!/usr/bin/env python3
"""Sidelobes of the planted suite's slash code (docs/results/selectors.md, "rr near field").

The synthetic generator (src/attention/synthetic.cpp) gives a slash head the logit
f(i - j) = (1.25 * strength / ns) * sum_o sum_m cos(w_m (i - j - o)): Toeplitz, peaking at each
planted offset o. With ns = 40 jittered-uniform frequencies w_m = pi (m + u_m) / ns in (0, pi]
(head_dim 128, 4 needles) and 4 offsets, this prints the spread of f away from the peaks: the
diagonal lines a slash head attends to that the planted ground truth does not list. The offsets
follow the generator's rule (one in 1..8, three in [W, 8W] with W = 256); the values here are one
fixed draw, not the suite's seed.

    python3 scripts/slash_sidelobes.py [--length 32768] [--seed 0]
"""
import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=32768, help="offsets d in [0, length)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the frequency jitter")
    ap.add_argument("--strength", type=float, default=12.0, help="planted strength (suite: 12)")
    ap.add_argument("--ns", type=int, default=40, help="slash frequency pairs (D 128: 40)")
    ap.add_argument("--offsets", type=int, nargs="+", default=[3, 400, 900, 1700])
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    w = np.pi * (np.arange(a.ns) + rng.uniform(size=a.ns)) / a.ns
    d = np.arange(a.length)
    f = sum((1.25 * a.strength / a.ns) * np.cos(np.outer(d - o, w)).sum(axis=1) for o in a.offsets)
    away = np.ones(a.length, bool)
    for o in a.offsets:
        away[max(0, o - 2) : o + 3] = False
    print(f"sidelobe std {f[away].std():.2f} logits, max {f[away].max():.2f}, "
          f"offsets above 10: {(f[away] > 10).sum()}, peaks {[round(float(f[o]), 1) for o in a.offsets]}")


if __name__ == "__main__":
    main()
