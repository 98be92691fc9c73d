#!/usr/bin/env python3
"""Turns the JSON written by bench/mcmc/run_mcmc_bench.sh into docs/results/mcmc.md.

Efficiency: min bulk ESS over the coefficients per second of sampling (warm-up excluded, chains
run one after another on one pinned core, so seconds are single-core seconds) and per gradient
evaluation (NUTS: leapfrog steps; second-order GI-MALA also evaluates one Hessian per iteration,
listed separately). Variance reduction: VRF = asymptotic variance of the plain ergodic mean /
that of the control-variate estimate, per coefficient, for E[beta_j] and E[beta_j^2]; min,
median and max over coefficients. Agreement: z_j = (mean_sieve - mean_numpyro) /
sqrt(mcse_sieve^2 + mcse_numpyro^2); if both are right, z_j ~ N(0, 1).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import platform
import statistics
import subprocess


def load(path: pathlib.Path):
    return json.loads(path.read_text()) if path.exists() else None


def fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return str(v)
    if abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


RHAT_OK = 1.05  # runs with a larger max R-hat have not converged: their MCSE, VRF and z mean little


def max_rhat(report):
    vals = [p["rhat"] for p in report["parameters"] if p["rhat"] is not None]
    return max(vals) if vals else float("nan")


def tag(token: str) -> str:
    """File tag of a sampler token (NAME or NAME@key=value,...), as run_mcmc_bench.sh writes it."""
    return re.sub(r"[^A-Za-z0-9-]", "_", token)


def vrf_stats(report, key):
    vals = [p[key]["vrf"] for p in report["parameters"] if p.get(key) and p[key].get("vrf")]
    if not vals:
        return None
    return min(vals), statistics.median(vals), max(vals)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--datasets", required=True)
    ap.add_argument("--samplers", required=True)
    ap.add_argument("--start", default="")
    ap.add_argument("--load", default="")
    ap.add_argument("--command", default="bench/mcmc/run_mcmc_bench.sh")
    args = ap.parse_args()
    d = pathlib.Path(args.dir)
    datasets = args.datasets.split()
    samplers = args.samplers.split()

    first = None
    L = []
    L.append("# MCMC benchmark: Bayesian logistic regression")
    L.append("")
    L.append(f"- command: `{args.command}`")
    L.append(f"- date: {args.start} (UTC)")
    L.append(f"- machine: {cpu_model()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} "
             f"cores; every run pinned to one core (`taskset`), sieve with `--threads 1`, "
             f"XLA with one thread; load average before the run: {args.load}")
    L.append(f"- commit: {commit()}")
    for ds in datasets:
        np_ = load(d / f"numpyro.{ds}.json")
        if np_:
            first = np_
            break
    if first:
        L.append(f"- peer: NumPyro {first['numpyro_version']} NUTS, JAX {first['jax_version']} (CPU, "
                 "float64), same model and data preparation; JIT compilation excluded "
                 "(paid in an untimed first chain)")
        per = []
        for ds in datasets:
            r = load(d / f"numpyro.{ds}.json")
            if r:
                per.append(f"{ds} {r['warmup']} + {r['draws']}")
        L.append(f"- each run: {first['chains']} chains, warm-up + draws per chain: "
                 f"{', '.join(per)} (sieve and NumPyro alike); seed {first['seed']}; prior "
                 "beta ~ N(0, 10^2 I); covariates standardised, intercept first; "
                 "`sampler@key=value` rows pass `--set key=value`")
    L.append("")
    L.append("min ESS = smallest bulk ESS over the coefficients; ESS/s = min ESS per second of "
             "sampling (warm-up excluded, summed over chains = single-core seconds); ESS/grad = "
             "min ESS per gradient evaluation after warm-up (NUTS: leapfrog steps); x NumPyro = "
             "ESS/s relative to NumPyro NUTS on the same data in the same run.")
    L.append("")

    # ---- efficiency ----
    L.append("## Efficiency")
    L.append("")
    L.append("| data | sampler | accept | min ESS | ESS/s | x NumPyro | ESS/grad | grads | Hessians | max R-hat |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for ds in datasets:
        np_ = load(d / f"numpyro.{ds}.json")
        base = np_["min_ess_bulk_per_second"] if np_ else None
        rows = [(s, load(d / f"sieve.{ds}.{tag(s)}.none.json")) for s in samplers]
        if np_:
            rows.append(("NumPyro NUTS", np_))
        for name, r in rows:
            if not r:
                L.append(f"| {ds} | {name} | (missing) | | | | | | | |")
                continue
            ess_s = r["min_ess_bulk_per_second"]
            rel = ess_s / base if base and ess_s else None
            hess = r.get("evaluations", {}).get("hessian", 0)
            worst_rhat = max_rhat(r)
            L.append(f"| {ds} | {name} | {fmt(r['acceptance']['mean'])} | {fmt(r['min_ess_bulk'])} | "
                     f"{fmt(ess_s)} | {fmt(rel)} | {fmt(r['min_ess_bulk_per_gradient'])} | "
                     f"{r['evaluations']['sampling_gradient']} | {hess if hess else ''} | "
                     f"{worst_rhat:.3f} |")
    L.append("")

    # ---- variance reduction ----
    L.append("## Variance reduction of control variates")
    L.append("")
    L.append("VRF = asymptotic variance of the plain ergodic mean / that of the control-variate "
             "estimate (both from the multi-chain initial-sequence estimator on the same draws), "
             "per coefficient; min / median / max over coefficients.")
    L.append("")
    L.append(f"Runs whose max R-hat exceeds {RHAT_OK} have not converged; their VRFs are not "
             "meaningful (a stuck chain makes every series nearly constant) and are not shown.")
    L.append("")
    L.append("| data | sampler | cv | VRF E[beta] (min / median / max) | VRF E[beta^2] (min / median / max) |")
    L.append("|---|---|---|---|---|")
    for ds in datasets:
        for s in samplers:
            for f in sorted(d.glob(f"sieve.{ds}.{tag(s)}.*.json")):
                cv = f.name.split(".")[-2]
                if cv == "none":
                    continue
                r = load(f)
                if max_rhat(r) > RHAT_OK:
                    L.append(f"| {ds} | {s} | {cv} | not converged (max R-hat {max_rhat(r):.2f}) | |")
                    continue
                m, m2 = vrf_stats(r, "cv_mean"), vrf_stats(r, "cv_second_moment")
                fm = " / ".join(fmt(v) for v in m) if m else "n/a"
                fm2 = " / ".join(fmt(v) for v in m2) if m2 else "n/a"
                L.append(f"| {ds} | {s} | {cv} | {fm} | {fm2} |")
    L.append("")

    # ---- agreement ----
    L.append("## Agreement of posterior means with NumPyro")
    L.append("")
    L.append("z = (sieve mean - NumPyro mean) / sqrt(MCSE_sieve^2 + MCSE_NumPyro^2) per "
             "coefficient (plain means; MCSE from the initial-sequence ESS). If both samplers "
             "target the same posterior, z ~ N(0, 1): about 68 % within 1 combined MCSE, 95 % "
             "within 2, and |z| > 4 essentially never.")
    L.append("")
    L.append(f"A run counts as converged when its max R-hat is at most {RHAT_OK}; for the others "
             "the MCSE is unreliable and the comparison is listed but not judged.")
    L.append("")
    L.append("| data | sampler | coefficients | max R-hat | within 1 MCSE | within 2 MCSE | max abs z | all within 4 |")
    L.append("|---|---|---|---|---|---|---|---|")
    all_ok = True
    judged = 0
    per_set, unconverged = {}, {}
    for ds in datasets:
        np_ = load(d / f"numpyro.{ds}.json")
        if not np_:
            continue
        ref = {p["name"]: p for p in np_["parameters"]}
        for s in samplers:
            r = load(d / f"sieve.{ds}.{tag(s)}.none.json")
            if not r:
                continue
            zs = []
            for p in r["parameters"]:
                q = ref.get(p["name"])
                if q is None or p["mcse_mean"] is None:
                    continue
                se = (p["mcse_mean"] ** 2 + q["mcse_mean"] ** 2) ** 0.5
                zs.append((p["mean"] - q["mean"]) / se)
            n = len(zs)
            w1 = sum(abs(z) <= 1 for z in zs)
            w2 = sum(abs(z) <= 2 for z in zs)
            mx = max(abs(z) for z in zs) if zs else float("nan")
            rh = max_rhat(r)
            converged = rh <= RHAT_OK
            ok = mx <= 4
            verdict = ("yes" if ok else "NO") if converged else "not converged"
            if converged:
                all_ok &= ok
                judged += 1
                per_set.setdefault(ds, []).append((s, mx, ok))
            else:
                unconverged.setdefault(ds, []).append(s)
            L.append(f"| {ds} | {s} | {n} | {rh:.3f} | {w1} ({100 * w1 / max(n, 1):.0f} %) | "
                     f"{w2} ({100 * w2 / max(n, 1):.0f} %) | {mx:.2f} | {verdict} |")
    L.append("")
    L.append(f"Every converged run ({judged} of them) has all posterior means within 4 combined "
             f"MCSE of NumPyro's: {'yes' if all_ok else 'NO'}.")
    L.append("")
    L.append("Per data set (converged sieve runs only):")
    L.append("")
    L.append("| data | converged sieve runs | all within 4 MCSE | max abs z (run) | not converged |")
    L.append("|---|---|---|---|---|")
    for ds in datasets:
        runs = per_set.get(ds, [])
        worst = max(runs, key=lambda t: t[1]) if runs else None
        L.append(f"| {ds} | {len(runs)} | "
                 f"{('yes' if all(ok for _, _, ok in runs) else 'NO') if runs else 'n/a'} | "
                 f"{f'{worst[1]:.2f} ({worst[0]})' if worst else ''} | "
                 f"{', '.join(unconverged.get(ds, [])) or '-'} |")
    L.append("")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text("\n".join(L))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
