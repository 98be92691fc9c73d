#!/usr/bin/env bash
# MCMC benchmark (not a test): Bayesian logistic regression on the bundled data sets.
#
# In one run, on one pinned CPU core each: ESS per second and per gradient evaluation of sieve's
# MALA, GI-MALA, second-order GI-MALA, adaptive IMH and NUTS (`sieve mcmc --json`), and of NumPyro
# NUTS (bench/mcmc/numpyro_nuts.py, same model, data preparation and prior); the variance
# reduction factor of each control variate over the plain ergodic mean for posterior means and
# second moments; and whether sieve's posterior means agree with NumPyro's within combined MCSE.
# Writes docs/results/mcmc.md (command, date, machine, commit) and keeps the raw JSON in $OUT.
#
#   bench/mcmc/run_mcmc_bench.sh                       # defaults below
#   DATASETS="pima ripley" DRAWS=2000 bench/mcmc/run_mcmc_bench.sh
#   WARMUP_ionosphere=3000 bench/mcmc/run_mcmc_bench.sh   # per-data-set warm-up (and DRAWS_<set>)
#   SAMPLERS="gi-mala gi-mala@target_accept=0.9" ...      # sampler@key=value,key=value: --set's
#
# Installs its Python peers from PyPI (pinned): numpyro 0.22.0, jax[cpu] 0.10.2, arviz 0.23.4.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# breast_cancer and sonar are nearly separable: NUTS needs ~10^6 gradients per run there, so they
# are left out of the default set (add them with DATASETS=... when time allows).
DATASETS=${DATASETS:-"pima ripley biopsy ionosphere"}
SAMPLERS=${SAMPLERS:-"mala gi-mala gi-mala2 aimh nuts"}
CHAINS=${CHAINS:-4}
WARMUP=${WARMUP:-1000}
DRAWS=${DRAWS:-2000}
SEED=${SEED:-1}
CORE=${CORE:-0}
BUILD=${BUILD:-build-bench-mcmc}
OUT=${OUT:-$BUILD/mcmc-bench}
RESULTS=${RESULTS:-docs/results/mcmc.md}
PY=${PYTHON:-python3}

# A sampler token is NAME or NAME@key=value[,key=value]; its file tag replaces what is not
# [A-Za-z0-9-] by '_' (make_report.py does the same).
sampler_of() { echo "${1%%@*}"; }
tag_of() { echo "$1" | sed 's/[^A-Za-z0-9-]/_/g'; }
sets_of() {
  case "$1" in
    *@*) local kv="${1#*@}"; local IFS=','; for x in $kv; do printf -- '--set\n%s\n' "$x"; done ;;
  esac
}
# Per-data-set warm-up / draws: WARMUP_<set>, DRAWS_<set> override WARMUP / DRAWS.
per_set() { local v="${1}_${2}"; echo "${!v:-$3}"; }

# Control variates per sampler: the Poisson-equation CV needs a Gaussian (GI) proposal kernel,
# the IMH CV an independent proposal; zero-variance CVs (gradients only) work with any sampler.
cvs_for() {
  case "$1" in
    gi-mala | gi-mala2 | gi-rwm) echo "poisson zv" ;;
    imh | imh-t | aimh) echo "imh zv" ;;
    *) echo "zv" ;;
  esac
}

echo "[bench] Python peers (PyPI, pinned)" >&2
"$PY" -m pip install -q --disable-pip-version-check "numpyro==0.22.0" "jax[cpu]==0.10.2" \
  "arviz==0.23.4" >&2

if [ -z "${SIEVE:-}" ]; then  # SIEVE=path/to/sieve skips the build (a Release build is assumed)
  echo "[bench] building sieve (Release) in $BUILD" >&2
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSIEVE_ENABLE_CUDA=OFF \
    -DSIEVE_BUILD_TESTS=OFF -DSIEVE_BUILD_BENCHMARKS=OFF >/dev/null
  ninja -C "$BUILD" sieve >&2
  SIEVE="$BUILD/tools/sieve"
fi

mkdir -p "$OUT"
PIN=()
command -v taskset >/dev/null && PIN=(taskset -c "$CORE")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)

for d in $DATASETS; do
  w=$(per_set WARMUP "$d" "$WARMUP")
  n=$(per_set DRAWS "$d" "$DRAWS")
  for tok in $SAMPLERS; do
    s=$(sampler_of "$tok")
    tag=$(tag_of "$tok")
    mapfile -t SETS < <(sets_of "$tok")
    echo "[bench] sieve $tok on $d (warm-up $w, draws $n)" >&2
    "${PIN[@]}" "$SIEVE" mcmc --model logistic --data "$d" --sampler "$s" --chains "$CHAINS" \
      --warmup "$w" --draws "$n" --seed "$SEED" --threads 1 --json "${SETS[@]}" \
      >"$OUT/sieve.$d.$tag.none.json"
    for cv in $(cvs_for "$s"); do
      # Same seed: the same draws, post-processed by the control variate.
      "${PIN[@]}" "$SIEVE" mcmc --model logistic --data "$d" --sampler "$s" --chains "$CHAINS" \
        --warmup "$w" --draws "$n" --seed "$SEED" --threads 1 --json --cv "$cv" "${SETS[@]}" \
        >"$OUT/sieve.$d.$tag.$cv.json"
    done
  done
  echo "[bench] numpyro nuts on $d" >&2
  "${PIN[@]}" "$PY" bench/mcmc/numpyro_nuts.py --data "data/mcmc/$d.csv" --chains "$CHAINS" \
    --warmup "$w" --draws "$n" --seed "$SEED" --out "$OUT/numpyro.$d.json"
done
OVERRIDES=$(env | grep -E '^(WARMUP|DRAWS)_[A-Za-z0-9_]+=' | sort | tr '\n' ' ' || true)

"$PY" bench/mcmc/make_report.py --dir "$OUT" --out "$RESULTS" --datasets "$DATASETS" \
  --samplers "$SAMPLERS" --start "$START" --load "$LOAD_BEFORE" \
  --command "${OVERRIDES}DATASETS=\"$DATASETS\" SAMPLERS=\"$SAMPLERS\" CHAINS=$CHAINS WARMUP=$WARMUP DRAWS=$DRAWS SEED=$SEED bench/mcmc/run_mcmc_bench.sh"
echo "[bench] wrote $RESULTS" >&2
