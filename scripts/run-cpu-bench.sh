#!/usr/bin/env bash
# Runs the CPU attention benchmark (bench/cpu/bench_attention_cpu.cpp) and writes
# docs/results/cpu-attention.md with the exact command, date, machine, load and commit.
# Usage: scripts/run-cpu-bench.sh [BUILD_DIR] [benchmark args, e.g. --quick]
# Called by `make bench` (BUILD_DIR defaults to build). QUICK=1 adds --quick.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
shift || true
ARGS=("$@")
if [[ "${QUICK:-0}" == "1" ]]; then ARGS+=(--quick); fi

if [[ ! -f "$BUILD_DIR/build.ninja" && ! -f "$BUILD_DIR/Makefile" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" --target bench_attention_cpu

BIN="$BUILD_DIR/bench/bench_attention_cpu"
OUT=docs/results/cpu-attention.md
TMP="$(mktemp)"
trap 'rm -f "$TMP"' EXIT

CMD="$(echo "$BIN ${ARGS[*]:-}" | sed 's/ *$//')"
echo "running: $CMD" >&2
"$BIN" "${ARGS[@]}" | tee "$TMP"

COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- src/attention/cpu src/attention/sparse_pattern.cpp bench/cpu/bench_attention_cpu.cpp 2>/dev/null; then COMMIT="$COMMIT (with uncommitted changes)"; fi
MODEL="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
{
  echo "# CPU attention kernels: results"
  echo
  echo "- command: \`$(echo "scripts/run-cpu-bench.sh $BUILD_DIR ${ARGS[*]:-}" | sed 's/ *$//')\` (runs \`$CMD\`)"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $MODEL, $(nproc) CPUs; $(uname -sr)"
  echo "- commit: $COMMIT"
  echo "- load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "FLOPs of causal attention = 4 * heads * head_dim * L(L+1)/2 (the two GEMMs over the"
  echo "causally visible pairs). The sgemm peer runs the unfused GEMMs of the same causal attention"
  echo "(S = Q_b K^T, O = S V per 512-query block) with OpenBLAS on the same threads, in the same run."
  echo "Targets: f32 dense kernel >= 0.5 of the sgemm rate at L = 16K; block-sparse time at 25 %"
  echo "density <= 0.35 of its own full-pattern time. The machine is shared: compare the ratios"
  echo "(measured side by side), not absolute times, and see the load average above."
  echo
  sed '/^# CPU attention benchmark$/{N;d}' "$TMP"
} > "$OUT"
echo "wrote $OUT" >&2
