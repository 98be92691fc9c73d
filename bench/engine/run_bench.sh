#!/usr/bin/env bash
# sieve vs llama.cpp on one machine: installs the bench-only Python packages
# (bench/engine/requirements.txt: llama-cpp-python, built from source by pip, and gguf), writes the
# random-weight ~128M Llama model in f32 and bf16 (scripts/make_bench_model.py), converts both to
# GGUF (bench/engine/convert_gguf.py) and runs bench/engine/bench_vs_llamacpp.py per thread count.
#
# Usage: bench/engine/run_bench.sh [BUILD_DIR] [WORK_DIR]
#   THREADS="1 2" REPEATS=5 PROMPT=256 GEN=64 bench/engine/run_bench.sh build-engine /tmp/engine-bench
# pip builds llama.cpp with its defaults (GGML_NATIVE=ON: -march=native, OpenMP); set CMAKE_ARGS
# to change that. The JSON reports land in WORK_DIR/bench_t<threads>.json.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD_DIR="${1:-build}"
WORK="${2:-/tmp/engine-bench}"
THREADS="${THREADS:-1 2}"
REPEATS="${REPEATS:-5}"
PROMPT="${PROMPT:-256}"
GEN="${GEN:-64}"

if ! python3 -c "import llama_cpp, gguf" 2>/dev/null; then
  echo "installing bench/engine/requirements.txt (pip builds llama.cpp from source)" >&2
  python3 -m pip install -r bench/engine/requirements.txt
fi
if [[ ! -x "$BUILD_DIR/tools/sieve" ]]; then
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSIEVE_ENABLE_CUDA=OFF
  fi
  cmake --build "$BUILD_DIR" --target sieve
fi

mkdir -p "$WORK"
for dt in f32 bf16; do
  dir="$WORK/llama128m-$dt"
  [[ -f "$dir/model.safetensors" ]] || python3 scripts/make_bench_model.py "$dir" --dtype "$dt"
  [[ -f "$dir.gguf" ]] || python3 bench/engine/convert_gguf.py "$dir" "$dir.gguf"
done

echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores" >&2
echo "commit: $(git rev-parse --short HEAD)" >&2
for t in $THREADS; do
  echo "threads $t, load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  python3 bench/engine/bench_vs_llamacpp.py --sieve "$BUILD_DIR/tools/sieve" \
    --model "f32=$WORK/llama128m-f32,$WORK/llama128m-f32.gguf" \
    --model "bf16=$WORK/llama128m-bf16,$WORK/llama128m-bf16.gguf" \
    --threads "$t" --prompt "$PROMPT" --gen "$GEN" --repeats "$REPEATS" \
    --json "$WORK/bench_t$t.json"
  echo "threads $t, load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
