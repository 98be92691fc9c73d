#!/usr/bin/env python3
"""NumPyro NUTS on sieve's logistic-regression data sets: the peer for bench/mcmc/run_mcmc_bench.sh.

Same model and data preparation as `sieve mcmc --model logistic`: intercept column first, each
covariate standardised to zero mean and unit sample variance (n - 1), beta ~ N(0, prior_sd^2 I),
y_i ~ Bernoulli(sigmoid(x_i' beta)). Chains run one after another on one CPU thread (the caller
pins the process), warm-up and sampling are timed separately,
and the number of gradient evaluations is the number of leapfrog steps. JIT compilation is
paid in an untimed first run and reported separately. Diagnostics come from
ArviZ (the same Stan definitions as sieve's, checked against each other in the unit tests).

    python3 bench/mcmc/numpyro_nuts.py --data data/mcmc/pima.csv --chains 4 --warmup 1000 \
        --draws 1000 --seed 1 --out numpyro_pima.json

Pinned versions (installed by run_mcmc_bench.sh): numpyro 0.22.0, jax[cpu] 0.10.2, arviz 0.23.4.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

# One CPU thread for XLA, as sieve runs with --threads 1: the comparison is per core.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_ENABLE_X64", "1")
warnings.simplefilter("ignore")

import numpy as np  # noqa: E402


def load(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Reads a sieve CSV (header, 0/1 column y) the way sieve::mcmc::load_csv does by default."""
    with open(path) as f:
        header = f.readline().strip().split(",")
    raw = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    iy = header.index("y")
    y = raw[:, iy]
    cols = [j for j in range(raw.shape[1]) if j != iy]
    x = raw[:, cols]
    x = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    X = np.hstack([np.ones((x.shape[0], 1)), x])
    return X, y, ["intercept"] + [header[j] for j in cols]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prior-sd", type=float, default=10.0)
    ap.add_argument("--target-accept", type=float, default=0.8)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer.hmc import hmc
    import arviz as az

    jax.config.update("jax_enable_x64", True)
    X_np, y_np, names = load(args.data)
    X, y = jnp.asarray(X_np), jnp.asarray(y_np)
    p = X.shape[1]
    inv_var = 1.0 / (args.prior_sd * args.prior_sd)

    def potential(beta):
        """-log posterior up to a constant: logistic likelihood and N(0, prior_sd^2 I) prior."""
        eta = X @ beta
        return -(jnp.sum(y * eta - jnp.logaddexp(0.0, eta)) - 0.5 * inv_var * jnp.dot(beta, beta))

    # NumPyro's NUTS kernel (multinomial, diagonal mass matrix, Stan's windowed adaptation) driven
    # by one jitted lax.scan per phase, so that XLA compiles once for all chains (MCMC.run would
    # recompile its loop on every call); an untimed first chain pays the compilation.
    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")

    def steps(state, n):
        def body(s, _):
            s = sample_kernel(s)
            return s, (s.z, s.num_steps, s.accept_prob)
        return jax.lax.scan(body, state, None, length=n)

    scan_warmup = jax.jit(lambda s: steps(s, args.warmup))
    scan_draws = jax.jit(lambda s: steps(s, args.draws))

    def one_chain(key):
        k_init, k_run = jax.random.split(key)
        z0 = jax.random.uniform(k_init, (p,), minval=-2.0, maxval=2.0)
        t0 = time.perf_counter()
        state = init_kernel(z0, num_warmup=args.warmup, target_accept_prob=args.target_accept,
                            rng_key=k_run)
        if args.warmup:
            state, _ = scan_warmup(state)
        jax.block_until_ready(state.z)
        t1 = time.perf_counter()
        state, (z, n_steps, acc) = scan_draws(state)
        z = np.asarray(jax.block_until_ready(z))
        t2 = time.perf_counter()
        return z, int(np.sum(n_steps)), float(np.mean(acc)), t1 - t0, t2 - t1

    t0 = time.perf_counter()
    one_chain(jax.random.PRNGKey(2**31 - 1))
    compile_s = time.perf_counter() - t0

    draws, steps_total, accept = [], [], []
    warmup_s = sampling_s = 0.0
    for c in range(args.chains):
        z, n, a, tw, ts = one_chain(jax.random.PRNGKey(args.seed * 1000 + c))
        draws.append(z)
        steps_total.append(n)
        accept.append(a)
        warmup_s += tw
        sampling_s += ts
    steps = steps_total

    arr = np.stack(draws)  # [chains, draws, p]
    params = []
    for j in range(p):
        x = arr[:, :, j]
        sq = x * x
        params.append({
            "name": names[j],
            "mean": float(x.mean()),
            "sd": float(x.std(ddof=1)),
            "mcse_mean": float(az.mcse(x, method="mean")),
            "ess_bulk": float(az.ess(x, method="bulk")),
            "ess_tail": float(az.ess(x, method="tail")),
            "rhat": float(az.rhat(x)),
            "second_moment": float(sq.mean()),
            "second_moment_mcse": float(az.mcse(sq, method="mean")),
        })
    min_ess = min(q["ess_bulk"] for q in params)
    out = {
        "peer": "numpyro-nuts",
        "numpyro_version": numpyro.__version__,
        "jax_version": jax.__version__,
        "data": args.data,
        "chains": args.chains,
        "warmup": args.warmup,
        "draws": args.draws,
        "seed": args.seed,
        "parameters": params,
        "acceptance": {"mean": float(np.mean(accept))},
        "timing": {"warmup_seconds": warmup_s, "sampling_seconds": sampling_s,
                   "compile_and_first_run_seconds": compile_s},
        "evaluations": {"sampling_gradient": int(sum(steps))},
        "min_ess_bulk": min_ess,
        "min_ess_bulk_per_second": min_ess / sampling_s,
        "min_ess_bulk_per_gradient": min_ess / max(1, sum(steps)),
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"numpyro {os.path.basename(args.data)}: min ESS_bulk {min_ess:.0f}, "
          f"{min_ess / sampling_s:.0f}/s, {min_ess / max(1, sum(steps)):.3f}/grad", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
