#!/usr/bin/env python3
"""Writes tests/data/mcmc/diagnostics_fixture.json: MCMC diagnostics computed by ArviZ on fixed chains.

The C++ tests (tests/cpp/mcmc/test_diagnostics.cpp) read the draws stored here and compare
sieve's rank-normalised split R-hat, bulk/tail/mean/sd ESS and MCSE with ArviZ's values, and its
batch-means variance with a plain numpy computation. ArviZ implements Vehtari et al. (2021), the
same definitions as Stan and the R `posterior` package.

    python3 -m pip install "arviz==0.23.4" numpy scipy
    python3 scripts/make_diagnostics_fixture.py      # run from the repository root

Draws are rounded to 6 decimals so that the decimal text in the JSON is exactly what both sides
compute on. Cases:
  ar1_pos      4 x 300 AR(1), rho = 0.7: ESS well below N (about N (1-rho)/(1+rho))
  ar1_anti     4 x 300 AR(1), rho = -0.3: antithetic, ESS > N (about 1.86 N), below the cap
  ar1_anti_cap 2 x 200 AR(1), rho = -0.8: ESS would be 9 N; ArviZ/Stan cap it at N log10(N)
  shifted      4 x 250 iid normal, chain 3 shifted by +0.8: R-hat clearly above 1
  scale        4 x 250 iid normal, chain 0 with sd 3: folded R-hat catches what bulk misses
  single_odd   1 x 301 AR(1), rho = 0.5: one chain, odd length (split drops the middle draw)
  ties         3 x 200 Poisson(2) counts: many tied ranks (average ranks)
"""
from __future__ import annotations

import json
import pathlib
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")
import arviz as az  # noqa: E402
from arviz.stats import diagnostics as azd  # noqa: E402


def ar1(rng, chains, draws, rho, mean=0.0, sd=1.0):
    """Stationary AR(1) with marginal N(mean, sd^2): x_t = rho x_{t-1} + sqrt(1-rho^2) sd e_t."""
    x = np.empty((chains, draws))
    x[:, 0] = rng.standard_normal(chains)
    s = np.sqrt(1.0 - rho * rho)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + s * rng.standard_normal(chains)
    return mean + sd * x


def batch_means_variance(x, batch):
    """Non-overlapping batch means of a 1-D series: b/(a-1) * sum_k (Ybar_k - Ybar)^2,
    over the first a*b draws (a = floor(n/b) batches)."""
    a = len(x) // batch
    y = x[: a * batch].reshape(a, batch).mean(axis=1)
    return batch * np.sum((y - y.mean()) ** 2) / (a - 1)


def overlapping_batch_means_variance(x, batch):
    """Overlapping batch means (Flegal & Jones 2010): n b / ((n-b)(n-b+1)) * sum_j (Ybar_j - Ybar)^2
    over all n-b+1 windows of length b."""
    n = len(x)
    c = np.concatenate([[0.0], np.cumsum(x)])
    y = (c[batch:] - c[:-batch]) / batch
    return n * batch * np.sum((y - x.mean()) ** 2) / ((n - batch) * (n - batch + 1))


def main() -> int:
    rng = np.random.default_rng(20240607)
    cases = {
        "ar1_pos": ar1(rng, 4, 300, 0.7),
        "ar1_anti": ar1(rng, 4, 300, -0.3, mean=1.5, sd=2.0),
        "ar1_anti_cap": ar1(rng, 2, 200, -0.8),
        "shifted": rng.standard_normal((4, 250)) + np.array([[0.0], [0.0], [0.0], [0.8]]),
        "scale": rng.standard_normal((4, 250)) * np.array([[3.0], [1.0], [1.0], [1.0]]),
        "single_odd": ar1(rng, 1, 301, 0.5),
        "ties": rng.poisson(2.0, size=(3, 200)).astype(float),
    }
    out = {
        "generator": "scripts/make_diagnostics_fixture.py",
        "arviz_version": az.__version__,
        "numpy_version": np.__version__,
        "cases": {},
    }
    for name, x in cases.items():
        x = np.round(x, 6)
        multi = x.shape[0] > 1
        ref = {
            "ess_bulk": float(az.ess(x, method="bulk")),
            "ess_tail": float(az.ess(x, method="tail")),
            "ess_mean": float(az.ess(x, method="mean")),
            "ess_sd": float(az.ess(x, method="sd")),
            "ess_q05": float(az.ess(x, method="quantile", prob=0.05)),
            "ess_median": float(az.ess(x, method="median")),
            "ess_identity": float(az.ess(x, method="identity")),
            "mcse_mean": float(az.mcse(x, method="mean")),
            "mcse_sd": float(az.mcse(x, method="sd")),
            "mcse_median": float(az.mcse(x, method="median")),
            "mcse_q05": float(az.mcse(x, method="quantile", prob=0.05)),
            "mean": float(x.mean()),
            "sd": float(x.std(ddof=1)),
            "q05": float(np.quantile(x, 0.05)),
            "q50": float(np.quantile(x, 0.5)),
            "q95": float(np.quantile(x, 0.95)),
        }
        if multi:
            ref.update({
                "rhat": float(az.rhat(x, method="rank")),
                "rhat_bulk": float(az.rhat(x, method="z_scale")),
                "rhat_folded": float(az.rhat(x, method="folded")),
                "rhat_split": float(az.rhat(x, method="split")),
                "rhat_identity": float(az.rhat(x, method="identity")),
            })
        else:
            # ArviZ's public rhat() refuses one chain; Stan and posterior split it into two. The
            # reference is ArviZ's own split / z-scale / fold / rhat steps applied to one chain.
            split = azd._split_chains(x)
            bulk = float(azd._rhat(azd._z_scale(split)))
            fold = float(azd._rhat(azd._z_scale(np.abs(split - np.median(split)))))
            ref.update({"rhat": max(bulk, fold), "rhat_bulk": bulk, "rhat_folded": fold,
                        "rhat_split": float(azd._rhat(split))})
        chain0 = x[0]
        b = int(np.floor(np.sqrt(len(chain0))))
        ref["chain0_batch"] = b
        ref["chain0_bm_var"] = float(batch_means_variance(chain0, b))
        ref["chain0_obm_var"] = float(overlapping_batch_means_variance(chain0, b))
        # Lugsail batch means (Vats & Flegal): 2 BM(b) - BM(floor(b/3)), r = 3.
        ref["chain0_lugsail_var"] = float(2 * batch_means_variance(chain0, b)
                                          - batch_means_variance(chain0, b // 3))
        ref["chain0_acov"] = [float(v) for v in
                              np.array([np.dot(chain0[: len(chain0) - k] - chain0.mean(),
                                               chain0[k:] - chain0.mean()) / len(chain0)
                                        for k in range(6)])]
        out["cases"][name] = {
            "chains": int(x.shape[0]),
            "draws": int(x.shape[1]),
            "x": [[float(f"{v:.6f}") for v in row] for row in x],
            "ref": ref,
        }
        print(f"{name}: ess_bulk={ref['ess_bulk']:.1f} ess_tail={ref['ess_tail']:.1f} "
              f"rhat={ref.get('rhat', float('nan')):.4f}", file=sys.stderr)

    path = pathlib.Path("tests/data/mcmc/diagnostics_fixture.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, separators=(",", ":"), allow_nan=False) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
