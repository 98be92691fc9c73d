#!/usr/bin/env python3
"""Peers of sieve's CUDA attention, timed in the same job on the same GPU, merged with sieve's rows.

Runs torch SDPA (FlashAttention-2 and cuDNN backends) and FlexAttention on the identical block mask
(keep_mask below is the rule of bench_attention_cuda.cu: keep_block), measures the bf16 GEMM and
device-copy ceilings, reads sieve's CSV (bench_attention_cuda --csv), writes every row to
OUT/gpu_attention.csv and prints a short table last.

    python3 bench/gpu/bench_attention.py --sieve-csv FILE --out DIR \
        [--dense 8192,32768,65536,131072] [--sparse 32768,131072] [--densities 1,0.5,0.2,0.1]
        [--peers-csv FILE]      also write the peer rows there as soon as they are measured
    python3 bench/gpu/bench_attention.py --merge-only --peers-csv FILE --sieve-csv FILE --out DIR

Shape: 32 query heads, 8 KV heads, head dim 128, bf16, causal. Times: CUDA events, median, after a
warm-up of at least one call and --min-warm-ms (default 250 ms; the same rule as sieve's bench).
"""
import argparse
import csv
import math
import os
import re
import sys
import time

try:  # --merge-only needs no torch
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:
    torch = None

H, HKV, D = 32, 8, 128
DEV = "cuda"


PEERS_CSV = ""  # --peers-csv: rewritten after every measured row (a run cut short keeps them)
MEASURED = []


def progress(row):
    print(row, flush=True)
    MEASURED.append(row)
    if PEERS_CSV:
        write_rows(PEERS_CSV, MEASURED)


MIN_WARM_MS = 250.0  # --min-warm-ms: the same warm-up rule as bench_attention_cuda's median_ms


def median_ms(fn, iters, warm=1):
    """Median of `iters` CUDA-event times after at least `warm` calls and MIN_WARM_MS of warm-up,
    so that every kernel is timed at the GPU's steady (power-limited) clock, not the idle boost."""
    t0 = time.perf_counter()
    i = 0
    while i < warm or (time.perf_counter() - t0) * 1e3 < MIN_WARM_MS:
        fn()
        torch.cuda.synchronize()
        i += 1
    ts = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def iters_for(length):
    return 3 if length >= 131072 else 5 if length >= 65536 else 10


def causal_flops(length):
    return 4.0 * H * D * length * (length + 1) / 2.0


def keep_mask(nb, density, seed=1):
    """[H, nb, nb] bool: the block rule of bench_attention_cuda.cu (keep_block), causal."""
    h = torch.arange(H, device=DEV, dtype=torch.int64).view(H, 1, 1)
    i = torch.arange(nb, device=DEV, dtype=torch.int64).view(1, nb, 1)
    j = torch.arange(nb, device=DEV, dtype=torch.int64).view(1, 1, nb)
    x = (h * 1000003 + i * 7919 + j * 104729 + seed * 15485863) % 2147483647
    x = (x * 48271) % 2147483647
    x = (x * 48271) % 2147483647
    keep = (x.double() / 2147483647.0) < density
    keep = keep | (j == i) | (j == 0)
    return keep & (j <= i)


def rows_ceilings():
    out = []
    a = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    ms = median_ms(lambda: a @ b, 10, 3)
    out.append(dict(bench="ceiling", impl="torch_gemm_bf16_8192", len=8192, density=1.0, ms=ms,
                    tflops=2 * 8192**3 / ms * 1e-9, note="random data"))
    x = torch.empty(2**31, device=DEV, dtype=torch.uint8)
    y = torch.empty_like(x)
    ms = median_ms(lambda: y.copy_(x), 10, 3)
    out.append(dict(bench="ceiling", impl="torch_copy", len=0, density=1.0, ms=ms, tflops=0.0,
                    note=f"{2 * 2**31 / ms * 1e-9:.2f} TB/s"))
    del a, b, x, y
    return out


def rows_sdpa(lengths):
    out = []
    for length in lengths:
        q = torch.randn(1, H, length, D, device=DEV, dtype=torch.bfloat16)
        k = torch.randn(1, HKV, length, D, device=DEV, dtype=torch.bfloat16)
        v = torch.randn(1, HKV, length, D, device=DEV, dtype=torch.bfloat16)
        for name, be in [("torch_sdpa_flash", SDPBackend.FLASH_ATTENTION),
                         ("torch_sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)]:
            try:
                with sdpa_kernel(be):
                    f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
                    ms = median_ms(f, iters_for(length))
                out.append(dict(bench="dense", impl=name, len=length, density=1.0, ms=ms,
                                tflops=causal_flops(length) / ms * 1e-9, note=""))
            except Exception as ex:  # a backend missing on this torch build is reported, not fatal
                out.append(dict(bench="dense", impl=name, len=length, density=1.0, ms=float("nan"),
                                tflops=float("nan"), note="failed: " + str(ex)[:120].replace(",", ";")))
            progress(out[-1])
        del q, k, v
        torch.cuda.empty_cache()
    return out


def rows_flex(lengths, densities):
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
    flex = torch.compile(flex_attention, dynamic=False)
    out = []

    def causal(b, h, qi, ki):
        return qi >= ki

    for length in lengths:
        q = torch.randn(1, H, length, D, device=DEV, dtype=torch.bfloat16)
        k = torch.randn(1, HKV, length, D, device=DEV, dtype=torch.bfloat16)
        v = torch.randn(1, HKV, length, D, device=DEV, dtype=torch.bfloat16)
        nb = length // 128
        for dens in densities:
            keep = keep_mask(nb, dens)
            eye = torch.eye(nb, dtype=torch.bool, device=DEV).view(1, nb, nb)
            full = (keep & ~eye).unsqueeze(0)  # off-diagonal kept blocks: no mask_mod needed
            full_num = full.sum(-1).to(torch.int32)
            full_idx = torch.argsort(full.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
            part_num = torch.ones(1, H, nb, dtype=torch.int32, device=DEV)  # the diagonal block
            part_idx = torch.arange(nb, dtype=torch.int32, device=DEV).view(1, 1, nb, 1).expand(1, H, nb, nb).contiguous()
            bm = BlockMask.from_kv_blocks(part_num, part_idx, full_num, full_idx, BLOCK_SIZE=128,
                                          mask_mod=causal, seq_lengths=(length, length))
            blocks = int(keep.sum().item())
            density = blocks / (H * nb * (nb + 1) / 2)
            pairs = (blocks - H * nb) * 128.0 * 128.0 + H * nb * 128.0 * 129.0 / 2.0
            f = lambda: flex(q, k, v, block_mask=bm, enable_gqa=True)
            ms = median_ms(f, iters_for(length), warm=2)
            out.append(dict(bench="sparse", impl="torch_flex", len=length, density=density, ms=ms,
                            tflops=4.0 * D * pairs / ms * 1e-9, note=f"blocks={blocks}"))
            progress(out[-1])
        del q, k, v
        torch.cuda.empty_cache()
    return out


def read_csv(path):
    rows = []
    if path and os.path.exists(path):
        with open(path) as f:
            for r in csv.DictReader(f):
                for key in ("len",):
                    r[key] = int(r[key])
                for key in ("density", "ms", "tflops"):
                    r[key] = float(r[key])
                rows.append(r)
    return rows


def lens(s):
    return [int(x) for x in s.split(",") if x]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sieve-csv", default="")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--dense", default="8192,32768,65536,131072")
    ap.add_argument("--sparse", default="32768,131072")
    ap.add_argument("--densities", default="1,0.5,0.2,0.1")
    ap.add_argument("--skip-flex", action="store_true")
    ap.add_argument("--min-warm-ms", type=float, default=250.0,
                    help="warm-up of every timed kernel, at least this long (default 250)")
    ap.add_argument("--peers-csv", default="", help="write the peer rows here as soon as measured")
    ap.add_argument("--merge-only", action="store_true",
                    help="measure nothing: merge --peers-csv and --sieve-csv and print the tables")
    a = ap.parse_args()
    if not 0 <= a.min_warm_ms <= 60000:
        ap.error(f"--min-warm-ms takes 0-60000, got {a.min_warm_ms}")
    global MIN_WARM_MS
    MIN_WARM_MS = a.min_warm_ms
    if a.merge_only:
        rows = read_csv(a.peers_csv)
    else:
        global PEERS_CSV
        PEERS_CSV = a.peers_csv
        print(torch.__version__, torch.cuda.get_device_name(), flush=True)
        rows = rows_ceilings()
        for r in rows:
            progress(r)
        rows += rows_sdpa(lens(a.dense))
        if not a.skip_flex and a.sparse:
            try:
                rows += rows_flex(lens(a.sparse), [float(x) for x in a.densities.split(",")])
            except Exception as ex:
                print("flex failed:", ex, file=sys.stderr)
        if a.peers_csv:
            write_rows(a.peers_csv, rows)
    rows += read_csv(a.sieve_csv)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "gpu_attention.csv")
    write_rows(path, rows)
    print_tables(rows)
    print("full CSV:", path)


def write_rows(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["bench", "impl", "len", "density", "ms", "tflops", "note"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in w.fieldnames})


def print_tables(rows):
    nan = float("nan")
    gemm = next((r["tflops"] for r in rows if r["impl"] == "torch_gemm_bf16_8192"), nan)
    by = {}
    for r in rows:
        by.setdefault((r["bench"], r["impl"], r["len"]), r)

    def ms(bench, impl, length):
        r = by.get((bench, impl, length))
        return r["ms"] if r else nan

    # our Hopper family in these rows: fa3 (auto's pick since it exists) where it ran, else wgmma
    hop = "sieve_fa3" if any(r["impl"] == "sieve_fa3" for r in rows) else "sieve_wgmma"
    hn = hop[len("sieve_"):]
    print(f"\n== dense causal bf16, H=32/8, D=128; TFLOP/s and % of the bf16 GEMM ({gemm:.0f} TFLOP/s) ==")
    print(f"{'L':>7} {hn + ' ms':>9} {'TF/s':>5} {'%gemm':>5} {'mma ms':>8} {'TF/s':>5} {'flash ms':>9} {'cudnn ms':>9} "
          f"{'flash/ours':>10} {'cudnn/ours':>10}")
    for length in sorted({r["len"] for r in rows if r["bench"] == "dense"}):
        w, m = ms("dense", hop, length), ms("dense", "sieve_mma.sync", length)
        fl, cd = ms("dense", "torch_sdpa_flash", length), ms("dense", "torch_sdpa_cudnn", length)
        best = min(x for x in (w, m) if x == x) if (w == w or m == m) else nan
        tf = lambda t: causal_flops(length) / t * 1e-9
        print(f"{length:>7} {w:>9.2f} {tf(w):>5.0f} {100 * tf(w) / gemm:>4.0f}% {m:>8.2f} {tf(m):>5.0f} {fl:>9.2f} {cd:>9.2f} "
              f"{fl / best:>9.2f}x {cd / best:>9.2f}x")
    sparse = [r for r in rows if r["bench"] == "sparse"]
    if sparse:
        # proportionality (issue 4: time ~ density within 15 %), two ways: against the separately
        # timed dense kernel of the sweep, and against this executor's own density-1.0 run
        print("\n== block-sparse, identical 128x128 block mask: flex ms / ours (>1: ours faster); time vs our dense;"
              " prop: time / (density x dense kernel), prop@1: time / (density x the density-1.0 run) ==")
        print(f"{'L':>7} {'density':>7} {hn + ' ms':>9} {'mma ms':>8} {'flex ms':>9} {'flex/' + hn:>10} {hn + '/dense':>11}"
              f" {'prop':>5} {'prop@1':>6}")
        for length in sorted({r["len"] for r in sparse}):
            dense = ms("sparse", hop + "_dense", length)
            ours = sorted((r for r in sparse if r["len"] == length and r["impl"] == hop), key=lambda r: -r["density"])
            mma = [r for r in sparse if r["len"] == length and r["impl"] == "sieve_mma.sync"]
            flex = [r for r in sparse if r["len"] == length and r["impl"] == "torch_flex"]
            full = next((r["ms"] for r in ours if r["density"] == 1.0), nan)
            for r in ours:
                fx = min(flex, key=lambda f: abs(f["density"] - r["density"]), default=None)
                mm = min(mma, key=lambda f: abs(f["density"] - r["density"]), default=None)
                fxm = fx["ms"] if fx else nan
                print(f"{length:>7} {r['density']:>7.3f} {r['ms']:>9.2f} {mm['ms'] if mm else nan:>8.2f} {fxm:>9.2f} "
                      f"{fxm / r['ms']:>9.2f}x {r['ms'] / dense:>6.2f} (x{r['density']:.2f})"
                      f" {r['ms'] / (r['density'] * dense):>5.2f} {r['ms'] / (r['density'] * full):>6.2f}")
    var = [r for r in rows if r["bench"] == "variant"]
    if var:
        print("\n== tile-shape sweep (dense bf16 d=128) ==")
        for r in var:
            print(f"{r['impl']:>20} L={r['len']:>7} {r['ms']:>9.2f} ms {r['tflops']:>6.0f} TF/s {r['note']}")
    e2e = [r for r in rows if r["bench"] == "e2e"]
    if e2e:
        print("\n== end-to-end selector + executor on the planted input (ms); sel%: selector time / our dense;"
              " flash/tot, cudnn/tot: speed-up over torch at the same length ==")
        print(f"{'L':>7} {'method':>16} {'density':>7} {'select':>8} {'sel%':>6} {'exec':>8} {'total':>8} "
              f"{'flash/tot':>9} {'cudnn/tot':>9} {'recall':>6} {'min':>6}")
        for r in e2e:
            if r["ms"] <= 0:
                print(f"{r['len']:>7} {r['impl']:>16} {r['note']}")
                continue
            note = r["note"]
            m = re.search(r"select=([\d.]+) ms \(([\d.]+)% of dense\) exec=([\d.]+) ms "
                          r"recall_mean=([\d.]+) recall_min=([\d.]+)", note)
            sel, pct, ex, rm, rmin = (float(x) for x in m.groups()) if m else (nan,) * 5
            if r["impl"] in ("sieve_dense", "sieve_dense_after"):
                sel, pct, ex, rm, rmin = 0.0, 0.0, r["ms"], 1.0, 1.0
            fl, cd = ms("dense", "torch_sdpa_flash", r["len"]), ms("dense", "torch_sdpa_cudnn", r["len"])
            print(f"{r['len']:>7} {r['impl']:>16} {r['density']:>7.3f} {sel:>8.2f} {pct:>5.1f}% {ex:>8.2f} "
                  f"{r['ms']:>8.2f} {fl / r['ms']:>8.2f}x {cd / r['ms']:>8.2f}x {rm:>6.3f} {rmin:>6.3f}")


if __name__ == "__main__":
    main()
