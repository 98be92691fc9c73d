#!/usr/bin/env python3
"""sieve vs llama.cpp on the same weights, same machine, same thread count, same run.

For each dtype (f32, bf16) and repeat, alternately:
  * sieve:     `sieve generate --ids PROMPT --max-tokens N --ignore-eos --threads T --json`
               (prefill = prompt forward incl. the last token's logits; decode = N - 1 single-token
               steps incl. greedy sampling), timings from sieve's own report;
  * llama.cpp: llama-cpp-python (PyPI, built from source) on the GGUF written by convert_gguf.py,
               the same prompt ids through Llama.eval (one batch), then N - 1 greedy single-token
               evals; timed with perf_counter around the calls.
Medians over repeats are reported; greedy tokens of both engines are compared as a check that
the conversion is right (same weights, same math up to rounding).

  python3 bench/engine/bench_vs_llamacpp.py --sieve build/tools/sieve \
      --model f32=/tmp/llama128m-f32,/tmp/llama128m-f32.gguf \
      --model bf16=/tmp/llama128m-bf16,/tmp/llama128m-bf16.gguf --threads 2 --json out.json
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama


def last_logits(llm):
    """Logits of the last evaluated token (Llama.scores is only filled with logits_all)."""
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))


def run_sieve(binary, model_dir, prompt, gen, threads):
    cmd = [binary, "generate", "--model", model_dir, "--ids", ",".join(map(str, prompt)),
           "--max-tokens", str(gen), "--ignore-eos", "--threads", str(threads), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r["prefill_tokens_per_s"], r["decode_tokens_per_s"], r["tokens"], r["linear_isa"]


def run_llamacpp(llm, prompt, gen):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    tokens = [int(np.argmax(last_logits(llm)))]
    t2 = time.perf_counter()
    for _ in range(gen - 1):
        llm.eval([tokens[-1]])
        tokens.append(int(np.argmax(last_logits(llm))))
    t3 = time.perf_counter()
    return len(prompt) / (t1 - t0), (gen - 1) / (t3 - t2), tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sieve", required=True)
    ap.add_argument("--model", action="append", required=True,
                    help="NAME=HF_DIR,GGUF_FILE (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--llama-kv", choices=["f32", "f16"], default="f32",
                    help="llama.cpp KV cache type (sieve's cache is f32)")
    ap.add_argument("--llama-no-mmap", action="store_true",
                    help="llama.cpp loads the weights into its own buffers instead of mmap")
    ap.add_argument("--json")
    a = ap.parse_args()
    kv_type = llama_cpp.GGML_TYPE_F32 if a.llama_kv == "f32" else llama_cpp.GGML_TYPE_F16

    rng = random.Random(1)
    results = []
    for spec in a.model:
        name, paths = spec.split("=", 1)
        hf_dir, gguf_file = paths.split(",")
        vocab = json.load(open(f"{hf_dir}/config.json"))["vocab_size"]
        prompt = [rng.randrange(3, vocab) for _ in range(a.prompt)]
        llm = Llama(model_path=gguf_file, n_ctx=a.prompt + a.gen + 16, n_batch=a.prompt,
                    n_ubatch=a.prompt, n_threads=a.threads, n_threads_batch=a.threads,
                    type_k=kv_type, type_v=kv_type, logits_all=False, verbose=False,
                    use_mmap=not a.llama_no_mmap)
        rows = {"sieve": [], "llama.cpp": []}
        toks = {}
        load_before = os.getloadavg()
        isa = ""
        run_llamacpp(llm, prompt[:16], 4)  # warm-up: page in the weights
        run_sieve(a.sieve, hf_dir, prompt[:16], 4, a.threads)
        for _ in range(a.repeats):
            p, d, toks["sieve"], isa = run_sieve(a.sieve, hf_dir, prompt, a.gen, a.threads)
            rows["sieve"].append((p, d))
            p, d, toks["llama.cpp"] = run_llamacpp(llm, prompt, a.gen)
            rows["llama.cpp"].append((p, d))
        del llm
        agree = sum(x == y for x, y in zip(toks["sieve"], toks["llama.cpp"]))
        first_diff = next((i for i, (x, y) in enumerate(zip(toks["sieve"], toks["llama.cpp"]))
                           if x != y), None)
        entry = {"dtype": name, "threads": a.threads, "prompt_tokens": a.prompt,
                 "llama_cpp_version": llama_cpp.__version__, "llama_cpp_kv": a.llama_kv,
                 "llama_cpp_mmap": not a.llama_no_mmap,
                 "generated_tokens": a.gen, "repeats": a.repeats, "sieve_linear_isa": isa,
                 "greedy_tokens_equal": agree, "first_difference": first_diff,
                 "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                 "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode()}
        for eng, vals in rows.items():
            entry[eng] = {"prefill_tokens_per_s": statistics.median(v[0] for v in vals),
                          "decode_tokens_per_s": statistics.median(v[1] for v in vals),
                          "all": vals}
        entry["decode_ratio"] = entry["sieve"]["decode_tokens_per_s"] / entry["llama.cpp"]["decode_tokens_per_s"]
        entry["prefill_ratio"] = entry["sieve"]["prefill_tokens_per_s"] / entry["llama.cpp"]["prefill_tokens_per_s"]
        results.append(entry)
        print(f"{name}: prefill sieve {entry['sieve']['prefill_tokens_per_s']:.1f} vs llama.cpp "
              f"{entry['llama.cpp']['prefill_tokens_per_s']:.1f} tok/s ({entry['prefill_ratio']:.2f}x); "
              f"decode sieve {entry['sieve']['decode_tokens_per_s']:.2f} vs llama.cpp "
              f"{entry['llama.cpp']['decode_tokens_per_s']:.2f} tok/s ({entry['decode_ratio']:.2f}x); "
              f"greedy tokens equal {agree}/{a.gen}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
