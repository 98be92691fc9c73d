// Times sieve's CUDA attention kernels on one GPU and writes CSV rows (merged with the torch peers by
// bench_attention.py, which runs in the same job on the same GPU). Usage: kUsage below.
//
// A method may carry settings after '@' ("rr@stride=16@outliers=1": make_selector("rr",
// {"stride=16", "outliers=1"})); --methods splits on commas, so a value that needs one writes '+'
// instead ("unisparse@granularities=128:4+32:16"). So one run times a selector at its defaults and at other settings
// without changing any default. --profile 1 prints, after each GPU selector's timed calls, the host
// time of one call with its host stamps (SIEVE_GPU_SELECT_PROFILE=host), then its per-stage times
// (SIEVE_GPU_SELECT_PROFILE=1, CUDA events between its stages); --cpu-compare L
// runs the CPU selector of every GPU-run method up to length L and prints how many rows of the
// GPU pattern differ, both densities and both recalls. --exec-families times each end-to-end
// pattern's executor once more per listed kernel family (rows "e2e_exec", impl "method@family";
// a family that cannot run the pattern is skipped). --exec-split K times each end-to-end pattern's
// executor once more in K key ranges merged by their LSE (rows "e2e_split", an experiment on the
// L2's reuse at 128K; see SplitExec), next to the whole pattern's executor before and after.
// Shape: 32 query heads, 8 KV heads, head dim 128, bf16, causal (the anchors of DESIGN.md). Times are
// CUDA-event medians after a warm-up of at least one call and --min-warm-ms (default 250 ms, so that
// every kernel is timed at the GPU's steady clock, not the idle boost); the end-to-end rows time each
// method's selector and executor after a warm-up of at least 2 rounds and --e2e-warm-ms (default
// --min-warm-ms), or with --e2e-order interleaved in rounds
// that visit every method once each (see bench_e2e); --e2e-gap-ms N lets the GPU idle N ms before
// each timed selector call (its clock recovers from the executor before it). Each round's selector
// and executor are enqueued behind an untimed executor call of the previous round's pattern, so
// the events time the GPU's work while the host sets the calls up, as inside a model
// (--e2e-timing pipelined, the default); --e2e-timing idle, --e2e-gap-ms and --e2e-order
// interleaved time each call from an idle stream, the host's set-up before its first kernel
// included. After a length's timed
// methods the dense reference runs once more (row "sieve_dense_after", its change against the first
// reading in the note; sel % stays against the first). Sparse masks follow the rule shared with bench_attention.py
// (keep_block below): each causal 128x128 block kept with probability `density` by a fixed integer
// hash, plus the diagonal and key block 0, so FlexAttention gets the identical block mask.
#include "sieve/attention/cuda/api.h"
#include "sieve/attention/cuda/check.h"
#include "sieve/attention/cuda/device_tensor.h"
#include "sieve/attention/cuda/flash_params.h"
#include "sieve/attention/cuda/host_run.h"
#include "sieve/attention/cuda/selectors.h"
#include "sieve/attention/selector.h"
#include "sieve/attention/sparse_pattern.h"
#include "sieve/attention/synthetic.h"
#include "sieve/core/error.h"
#include "sieve/core/timer.h"

#include "bench_kernels.h"
#include "common/bench_args.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <numbers>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace cu = sieve::attention::cuda;
using sieve::DType;
using sieve::TensorView;

// ---- inputs -------------------------------------------------------------------------------------

cu::DeviceTensor random_device(int64_t h, int64_t l, int64_t d, uint64_t seed, float sigma) {
  cu::DeviceTensor t(DType::kBF16, {h, l, d});
  sieve::bench::fill_random_bf16(t.view().data, t.view().numel(), seed, sigma);
  SIEVE_CUDA_CHECK(cudaGetLastError());
  return t;
}

// ---- timing ---------------------------------------------------------------------------------------

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// --min-warm-ms: every median_ms warms up for at least this long. The H200 runs long kernels at
// its 700 W power limit, below its idle clock; a measurement that starts on an idle GPU (the first
// of a length, after the host built its inputs) can run its first ~150 ms at a higher clock: at
// 32K the dense reference once read 13.75 ms and the identical density-1.0 pattern right after it
// 14.62 ms
// (docs/results/gpu-attention.md, session 18, job G). bench_attention.py warms its peers the same way.
double g_min_warm_ms = 250.0;

double median_ms(const std::function<void()>& fn, int warm, int iters) {
  sieve::Timer t;
  for (int i = 0; i < warm || t.ms() < g_min_warm_ms; ++i) {
    fn();
    SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
  }
  std::vector<double> ts;
  for (int i = 0; i < iters; ++i) ts.push_back(cu::event_ms(fn));
  return median_of(std::move(ts));
}
int iters_for(int64_t l) { return l >= 131072 ? 3 : l >= 65536 ? 5 : 10; }

struct Row {
  std::string bench, impl;
  int64_t len = 0;
  double density = 1, ms = 0, tflops = 0;
  std::string note;
};
std::vector<Row> g_rows;
std::string g_csv = "bench_attention_cuda.csv";
// The CSV is rewritten after every row, so a run cut short by a time limit keeps what it measured.
void write_csv() {
  std::ofstream f(g_csv);
  f << "bench,impl,len,density,ms,tflops,note\n";
  for (const Row& r : g_rows)
    f << r.bench << ',' << r.impl << ',' << r.len << ',' << r.density << ',' << r.ms << ',' << r.tflops << ",\""
      << r.note << "\"\n";
}
void emit(const Row& r) {
  g_rows.push_back(r);
  std::printf("%-8s %-22s L=%-7ld density=%.3f  %9.3f ms  %7.1f TFLOP/s  %s\n", r.bench.c_str(),
              r.impl.c_str(), long(r.len), r.density, r.ms, r.tflops, r.note.c_str());
  std::fflush(stdout);
  write_csv();
}

struct Shape {
  int64_t hq = 32, hkv = 8, d = 128;
};

// Causal pairs of one head: L(L+1)/2; FLOPs = 4 * D * pairs (QK^T and PV).
double causal_flops(const Shape& s, int64_t l) { return 4.0 * double(s.hq) * double(s.d) * double(l) * double(l + 1) / 2.0; }

// ---- the shared block-mask rule (keep in sync with bench_attention.py: keep_mask) ----------------
bool keep_block(int64_t h, int64_t i, int64_t j, double density, int64_t seed) {
  if (j == i || j == 0) return true;
  int64_t x = (h * 1000003 + i * 7919 + j * 104729 + seed * 15485863) % 2147483647;
  x = (x * 48271) % 2147483647;
  x = (x * 48271) % 2147483647;
  return double(x) / 2147483647.0 < density;
}

// Pattern of 128x128 blocks over query heads; also returns the kept (causal) pairs.
sieve::attention::SparsePattern hash_pattern(const Shape& s, int64_t l, double density, double* pairs) {
  sieve::attention::SparsePattern p;
  p.seq_len_q = p.seq_len_k = l;
  p.block_q = p.block_k = 128;
  p.num_heads = int(s.hq);
  p.causal = true;
  const int64_t nb = (l + 127) / 128;
  p.block_indptr.push_back(0);
  double kept = 0;
  for (int64_t h = 0; h < s.hq; ++h)
    for (int64_t i = 0; i < nb; ++i) {
      for (int64_t j = 0; j <= i; ++j)
        if (keep_block(h, i, j, density, 1)) {
          p.block_indices.push_back(int32_t(j));
          kept += j < i ? 128.0 * 128.0 : 128.0 * 129.0 / 2.0;
        }
      p.block_indptr.push_back(int32_t(p.block_indices.size()));
    }
  *pairs = kept;
  return p;
}

// ---- benches --------------------------------------------------------------------------------------

struct Problem {
  cu::DeviceTensor q, k, v, out;
  Problem(const Shape& s, int64_t l, uint64_t seed)
      : q(random_device(s.hq, l, s.d, seed, 1.f)), k(random_device(s.hkv, l, s.d, seed + 1, 1.f)),
        v(random_device(s.hkv, l, s.d, seed + 2, 1.f)), out(DType::kBF16, {s.hq, l, s.d}) {}
};

// Runs fn once per kernel family ("mma": mma.sync; "auto": fa3 on Hopper for head dim 128, else
// wgmma; "wgmma", "fa3" forced) with the kernel's name ("sieve_mma.sync", "sieve_fa3", ...) as
// the impl column.
std::vector<std::string> g_families{"mma", "auto"};  // --families: "auto" alone skips mma.sync
void for_each_kernel(int64_t head_dim, int64_t block_k, const std::function<void(const std::string&)>& fn) {
  std::vector<std::string> seen;
  for (const std::string& pref : g_families) {
    cu::set_kernel_preference(pref);
    const std::string name = cu::kernel_info(DType::kBF16, head_dim, block_k).name;
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) continue;
    seen.push_back(name);
    fn("sieve_" + name);
  }
  cu::set_kernel_preference("auto");
}

void bench_dense(const Shape& s, const std::vector<int64_t>& lens) {
  for (int64_t l : lens) {
    Problem pb(s, l, 7);
    sieve::attention::AttentionOptions o;
    for_each_kernel(s.d, 0, [&](const std::string& impl) {
      const double ms = median_ms([&] { cu::dense_attention(pb.q, pb.k, pb.v, pb.out, o); }, 1, iters_for(l));
      emit({"dense", impl, l, 1.0, ms, causal_flops(s, l) / ms * 1e-9, ""});
    });
  }
}

void bench_sparse(const Shape& s, const std::vector<int64_t>& lens, const std::vector<double>& densities) {
  for (int64_t l : lens) {
    Problem pb(s, l, 11);
    sieve::attention::AttentionOptions o;
    cu::DeviceTensor ref(DType::kBF16, {s.hq, l, s.d});
    std::vector<std::pair<sieve::attention::SparsePattern, double>> pats;
    for (double dens : densities) {
      double pairs = 0;
      auto pat = hash_pattern(s, l, dens, &pairs);
      pats.emplace_back(std::move(pat), pairs);
    }
    for_each_kernel(s.d, 128, [&](const std::string& impl) {
      const double dense_ms = median_ms([&] { cu::dense_attention(pb.q, pb.k, pb.v, ref, o); }, 1, iters_for(l));
      emit({"sparse", impl + "_dense", l, 1.0, dense_ms, causal_flops(s, l) / dense_ms * 1e-9,
            "dense kernel, reference for time ~ density"});
      for (const auto& [pat, pairs] : pats) {
        const cu::DevicePattern dp = cu::DevicePattern::upload(pat);
        const double ms = median_ms([&] { cu::block_sparse_attention(pb.q, pb.k, pb.v, dp.view(), pb.out, o); }, 1, iters_for(l));
        std::string note = "blocks=" + std::to_string(pat.block_indices.size());
        if (pat.block_density() >= 0.999) {  // the full pattern must reproduce the dense kernel bit for bit
          unsigned long long h[2];
          sieve::bench::count_mismatch_u16(pb.out.view().data, ref.view().data, ref.view().numel(), h);
          note += " mismatches_vs_dense=" + std::to_string(h[0]) + " nan=" + std::to_string(h[1]);
        }
        emit({"sparse", impl, l, pat.block_density(), ms, 4.0 * double(s.d) * pairs / ms * 1e-9, note});
      }
    });
  }
}

// Tile-shape sweep of the dense bf16 d=128 kernel (chooses src/attention/cuda/flash_configs.h).
void bench_variants(const Shape& s, const std::vector<int64_t>& lens) {
  for (int64_t l : lens) {
    Problem pb(s, l, 5);
    cu::FlashParams p;
    p.q = pb.q.view().data;
    p.k = pb.k.view().data;
    p.v = pb.v.view().data;
    p.out = pb.out.view().data;
    p.q_head_stride = p.o_head_stride = l * s.d;
    p.k_head_stride = p.v_head_stride = l * s.d;
    p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = s.d;
    p.seq_q = p.seq_k = int(l);
    p.num_heads_q = int(s.hq);
    p.group = int(s.hq / s.hkv);
    p.scale_log2 = float(1.0 / std::sqrt(double(s.d)) * std::numbers::log2e);
    for (int i = 0; i < sieve::bench::num_variants(); ++i) {
      const double ms = median_ms([&] { SIEVE_CUDA_CHECK(sieve::bench::launch_variant(i, p, nullptr)); }, 1, iters_for(l));
      const sieve::bench::VariantInfo vi = sieve::bench::variant_info(i);
      emit({"variant", vi.name, l, 1.0, ms, causal_flops(s, l) / ms * 1e-9,
            "regs=" + std::to_string(vi.regs) + " local=" + std::to_string(vi.local_bytes) +
                " ctas/sm=" + std::to_string(vi.ctas_per_sm)});
    }
  }
}

// End to end on the planted synthetic suite (synthetic.h, default structure, kSuiteStrength): GPU selector
// (timed with its allocations) + block-sparse executor, against our dense kernel; density of the
// pattern and its recall (exact softmax mass kept, every L/32-th row of every head). rr and
// unisparse run once per estimate path (impl "rr[simt]", "rr[mma]"); a selector without a GPU
// port runs on the CPU on the host tensors up to cpu_max (impl "sample[cpu]", its select time the
// host wall clock of one call) and its pattern is uploaded.
bool g_profile = false;      // --profile
int64_t g_cpu_compare = 0;   // --cpu-compare L: GPU vs CPU pattern of rr / unisparse up to length L
std::vector<std::string> g_exec_families;  // --exec-families
bool g_e2e_interleaved = false;             // --e2e-order interleaved
// --e2e-timing pipelined (the default since session 22): each round's selector and executor are
// enqueued behind an untimed executor call, so the host sets the calls up while the GPU is busy,
// as inside a model, and the events time the GPU's work; idle (the default until session 22):
// each call is timed from an idle stream, the host's set-up before its first launch included
// (sample at 32K: its first kernel is enqueued ~40 us into the call; docs/results/gpu-attention.md)
bool g_e2e_pipelined = true;
int64_t g_e2e_gap_ms = 0;                    // --e2e-gap-ms: idle time before each timed selector call
double g_e2e_warm_ms = -1;  // --e2e-warm-ms: a method's warm-up before its rounds (-1: --min-warm-ms)
int g_exec_split = 0;  // --exec-split K: also time each e2e pattern's executor in K key ranges

// The --exec-split experiment: a pattern's key blocks cut into K equal ranges, one executor call
// per range over the query rows that see it (rows from the range's first key on, bottom-right
// causal), the partial outputs merged through their LSE. A call's K and V are 1/K of a head's
// (64 MB at 128K against the H200's 60 MB L2), so CTAs that drift apart in the key range still
// share the L2. Parts: pattern [Hq rows from row0] over block ids [b0, b1), bf16 output, f32 LSE.
struct SplitExec {
  std::vector<cu::DevicePattern> parts;
  std::vector<cu::DeviceTensor> outs, lses;
  std::vector<int64_t> row0;
};

// Empty when the pattern is not a plain square block CSR (columns, band, per-KV-head rows).
SplitExec make_split(const sieve::attention::SparsePattern& pat, int k_parts, int64_t d) {
  SplitExec e;
  if (pat.has_columns() || pat.band > 0 || pat.per_kv_head || pat.block_q != pat.block_k ||
      pat.seq_len_q != pat.seq_len_k || !pat.causal)
    return e;
  const int64_t nqb = pat.num_q_blocks(), nkb = pat.num_k_blocks();
  for (int p = 0; p < k_parts; ++p) {
    const int64_t b0 = nkb * p / k_parts, b1 = nkb * (p + 1) / k_parts;
    sieve::attention::SparsePattern sp;
    sp.seq_len_q = pat.seq_len_q - b0 * pat.block_q;
    sp.seq_len_k = pat.seq_len_k;
    sp.block_q = pat.block_q;
    sp.block_k = pat.block_k;
    sp.num_heads = pat.num_heads;
    sp.causal = true;
    sp.block_indptr.push_back(0);
    for (int64_t h = 0; h < pat.num_heads; ++h)
      for (int64_t qb = b0; qb < nqb; ++qb) {
        const int64_t r = pat.row(h, qb);
        for (int32_t i = pat.block_indptr[size_t(r)]; i < pat.block_indptr[size_t(r) + 1]; ++i) {
          const int32_t kb = pat.block_indices[size_t(i)];
          if (kb >= b0 && kb < b1) sp.block_indices.push_back(kb);
        }
        sp.block_indptr.push_back(int32_t(sp.block_indices.size()));
      }
    sp.validate();
    e.parts.push_back(cu::DevicePattern::upload(sp));
    e.outs.emplace_back(DType::kBF16, std::initializer_list<int64_t>{pat.num_heads, sp.seq_len_q, d});
    e.lses.emplace_back(DType::kF32, std::initializer_list<int64_t>{pat.num_heads, sp.seq_len_q});
    e.row0.push_back(b0 * pat.block_q);
  }
  return e;
}

// Largest |a - b| over two bf16 tensors of equal size (an executor's output against a reference).
double max_abs_diff_bf16(const sieve::Tensor& a, const sieve::Tensor& b) {
  SIEVE_CHECK(a.numel() == b.numel(), "max_abs_diff_bf16: {} against {} values", a.numel(), b.numel());
  double diff = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    diff = std::max<double>(diff, std::fabs(sieve::bf16_to_f32(a.data_as<sieve::BF16>()[i]) -
                                            sieve::bf16_to_f32(b.data_as<sieve::BF16>()[i])));
  return diff;
}

// Rows (head, query block) whose block lists differ between two patterns of equal shape.
int64_t differing_rows(const sieve::attention::SparsePattern& a, const sieve::attention::SparsePattern& b) {
  int64_t n = 0;
  for (size_t r = 0; r + 1 < a.block_indptr.size(); ++r)
    if (!std::equal(a.block_indices.begin() + a.block_indptr[r], a.block_indices.begin() + a.block_indptr[r + 1],
                    b.block_indices.begin() + b.block_indptr[r], b.block_indices.begin() + b.block_indptr[r + 1]))
      ++n;
  return n;
}

// "name@key=value@key=value" -> the selector with those settings applied; every '+' stands for
// the comma that the --methods list cannot hold (so write numbers without '+': 1000, not 1e+3).
std::unique_ptr<sieve::attention::PatternSelector> selector_from_spec(const std::string& spec) {
  std::vector<std::string> parts;
  std::stringstream ss(spec);
  for (std::string t; std::getline(ss, t, '@');) {
    std::replace(t.begin(), t.end(), '+', ',');
    parts.push_back(t);
  }
  const std::string name = parts.front();
  parts.erase(parts.begin());
  return sieve::attention::make_selector(name, parts);
}

// One end-to-end row: a method (with its estimate path for rr / unisparse), where it selects, and
// the per-round times of its selector and executor.
struct E2eRun {
  std::string impl, path;
  bool on_gpu = true;
  std::unique_ptr<sieve::attention::PatternSelector> sel;
  cu::DevicePattern dp;
  std::vector<double> sel_ms, exec_ms;
};

// Whether the e2e rounds run pipelined: --e2e-timing pipelined (the default), except with a gap
// (which times from the idle stream it made) or in interleaved order (whose rounds put another
// method's executor, not this one's, before each selector call).
bool pipelined() { return g_e2e_pipelined && g_e2e_gap_ms == 0 && !g_e2e_interleaved; }

// Three CUDA events (the pipelined end-to-end round), destroyed on every path.
struct Events {
  cudaEvent_t a = nullptr, b = nullptr, c = nullptr;
  Events() {
    SIEVE_CUDA_CHECK(cudaEventCreate(&a));
    SIEVE_CUDA_CHECK(cudaEventCreate(&b));
    SIEVE_CUDA_CHECK(cudaEventCreate(&c));
  }
  ~Events() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaEventDestroy(c);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  static double ms(cudaEvent_t from, cudaEvent_t to) {
    float v = 0;
    SIEVE_CUDA_CHECK(cudaEventElapsedTime(&v, from, to));
    return double(v);
  }
};

void bench_e2e(const Shape& s, const std::vector<int64_t>& lens, const std::vector<std::string>& methods,
               const std::vector<std::string>& estimates, int64_t cpu_max) {
  for (int64_t l : lens) {
    sieve::attention::SyntheticConfig c;
    c.num_heads_q = s.hq;
    c.num_heads_kv = s.hkv;
    c.seq_len = l;
    c.head_dim = s.d;
    c.dtype = DType::kBF16;
    c.seed = 3;
    c.strength = sieve::attention::kSuiteStrength;  // the planted suite of `sieve attn`
    sieve::Timer timer;
    const sieve::attention::SyntheticWorkload w = sieve::attention::make_synthetic(c);
    std::printf("synthetic L=%ld generated in %.1f s\n", long(l), timer.seconds());
    const cu::DeviceTensor q = cu::DeviceTensor::from_host(w.q), k = cu::DeviceTensor::from_host(w.k),
                           v = cu::DeviceTensor::from_host(w.v);
    cu::DeviceTensor out(DType::kBF16, {s.hq, l, s.d});
    sieve::attention::AttentionOptions o;
    const double dense_ms = median_ms([&] { cu::dense_attention(q, k, v, out, o); }, 1, iters_for(l));
    const double flops = causal_flops(s, l);
    emit({"e2e", "sieve_dense", l, 1.0, dense_ms, flops / dense_ms * 1e-9, "our dense kernel (planted input)"});
    const int64_t stride = std::max<int64_t>(1, l / 32);
    const std::string saved = cu::estimate_path();
    const auto exec = [&](const cu::DevicePattern& dp) {
      cu::block_sparse_attention(q, k, v, dp.view(), out, o);
    };

    // Which rows this length has: a GPU-selected method once per estimate path (rr and
    // unisparse), a method without a GPU port on the CPU (up to cpu_max).
    std::vector<E2eRun> runs;
    for (const std::string& m : methods) {
      auto probe = selector_from_spec(m);
      if (!cu::has_device_selector(*probe)) {
        E2eRun r;
        r.impl = m + "[cpu]";
        r.on_gpu = false;
        r.sel = std::move(probe);
        runs.push_back(std::move(r));
        continue;
      }
      const bool two_paths = probe->name() == "rr" || probe->name() == "unisparse";
      for (const std::string& path : two_paths ? estimates : std::vector<std::string>{saved}) {
        E2eRun r;
        r.impl = two_paths ? m + "[" + path + "]" : m;
        r.path = path;
        r.sel = selector_from_spec(m);
        runs.push_back(std::move(r));
      }
    }

    // Each method is timed in rounds of one selector call and one executor call, medians over
    // the rounds. Default (grouped): all rounds of one method, then the next, each after a
    // warm-up of at least 2 such rounds and --e2e-warm-ms (default --min-warm-ms, 250 ms; 25 ms
    // until session 19, when 10 rounds at 32K are only ~110 ms), so that the method is timed in
    // its own steady state.
    // The H200 runs the dense reference and the executors at its 700 W power limit (SM clock
    // 1470-1850 MHz against 1980 MHz idle, nvidia-smi dmon): with one warm-up call, the first
    // method after the dense reference read up to 35 % slower at 128K (rr 11.3 against 8.2 ms in
    // one run; docs/results/gpu-attention.md, session 11). --e2e-order interleaved times the
    // methods in turn within each round instead, so every selector call follows another
    // method's executor, as it would follow the previous layer's work in a model.
    const double warm_ms = g_e2e_warm_ms < 0 ? g_min_warm_ms : g_e2e_warm_ms;
    const auto warm = [&](E2eRun& r, bool long_warm) {
      cu::set_estimate_path(r.path);
      sieve::Timer t;
      for (int i = 0; i < (long_warm ? 2 : 1) || (long_warm && t.ms() < warm_ms); ++i) {
        cu::DevicePattern fresh = cu::select_on_device(*r.sel, q, k, o);
        SIEVE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
        r.dp = std::move(fresh);
        exec(r.dp);
        SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
      }
    };
    const auto time_once = [&](E2eRun& r) {
      cu::set_estimate_path(r.path);
      if (g_e2e_gap_ms > 0) {  // the GPU idles first (its clock recovers from the executor's power)
        SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
        std::this_thread::sleep_for(std::chrono::milliseconds(g_e2e_gap_ms));
      }
      // The new pattern replaces the old one only after the timed region.
      cu::DevicePattern fresh;
      if (!pipelined()) {
        r.sel_ms.push_back(cu::event_ms([&] { fresh = cu::select_on_device(*r.sel, q, k, o); }));
        r.dp = std::move(fresh);
        r.exec_ms.push_back(cu::event_ms([&] { exec(r.dp); }));
        return;
      }
      // Pipelined: the previous round's pattern runs through the executor untimed, and the
      // selector and executor are enqueued behind it (as behind the previous layer's attention):
      // the host sets the call up while the GPU is busy, and the events time the GPU's work.
      const Events ev;
      exec(r.dp);
      SIEVE_CUDA_CHECK(cudaEventRecord(ev.a));
      fresh = cu::select_on_device(*r.sel, q, k, o);
      SIEVE_CUDA_CHECK(cudaEventRecord(ev.b));
      exec(fresh);
      SIEVE_CUDA_CHECK(cudaEventRecord(ev.c));
      SIEVE_CUDA_CHECK(cudaEventSynchronize(ev.c));
      r.sel_ms.push_back(ev.ms(ev.a, ev.b));
      r.exec_ms.push_back(ev.ms(ev.b, ev.c));
      r.dp = std::move(fresh);
    };
    const int rounds = iters_for(l);
    if (!g_e2e_interleaved) {
      for (E2eRun& r : runs) {
        if (!r.on_gpu) continue;
        warm(r, true);
        for (int round = 0; round < rounds; ++round) time_once(r);
      }
    } else {
      for (E2eRun& r : runs)
        if (r.on_gpu) warm(r, false);
      for (int round = 0; round < rounds; ++round)
        for (E2eRun& r : runs)
          if (r.on_gpu) time_once(r);
    }
    cu::set_estimate_path(saved);
    // The dense reference again, right after the timed methods: the selector shares (sel %) are
    // against the first reading, and the two readings show how far the GPU's state (clock under
    // the power limit, temperature) moved while the methods ran.
    const double dense_after_ms =
        median_ms([&] { cu::dense_attention(q, k, v, out, o); }, 1, iters_for(l));

    for (E2eRun& r : runs) {
      double sel_ms = 0, exec_ms = 0;
      const char* where = "gpu";
      if (!r.on_gpu) {
        if (l > cpu_max) {
          emit({"e2e", r.impl, l, 0.0, 0.0, 0.0, "no GPU port; CPU selection skipped above --cpu-select-max"});
          continue;
        }
        sieve::Timer t;
        const sieve::attention::SparsePattern hp = r.sel->select(w.q, w.k, o);
        sel_ms = t.seconds() * 1e3;
        r.dp = cu::DevicePattern::upload(hp);
        exec_ms = median_ms([&] { exec(r.dp); }, 1, iters_for(l));
        where = "cpu";
      } else {
        sel_ms = median_of(r.sel_ms);
        exec_ms = median_of(r.exec_ms);
        cu::set_estimate_path(r.path);
        if (g_profile) {
          {  // host time of one call with host stamps only (no events, no synchronisation)
            setenv("SIEVE_GPU_SELECT_PROFILE", "host", 1);  // NOLINT(concurrency-mt-unsafe)
            SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
            sieve::Timer host;
            double us = 0;
            {
              const cu::DevicePattern p = cu::select_on_device(*r.sel, q, k, o);
              us = host.seconds() * 1e6;
            }
            const double with_release = host.seconds() * 1e6;
            SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
            std::fprintf(stderr, "profile %s L=%ld: host time of one call %.1f us (%.1f with the pattern's release)\n",
                         r.impl.c_str(), long(l), us, with_release);
            setenv("SIEVE_GPU_SELECT_PROFILE", "1", 1);  // NOLINT(concurrency-mt-unsafe)
          }
          std::fprintf(stderr, "profile %s L=%ld: ", r.impl.c_str(), long(l));
          (void)cu::select_on_device(*r.sel, q, k, o);
          SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
          unsetenv("SIEVE_GPU_SELECT_PROFILE");  // NOLINT(concurrency-mt-unsafe)
        }
        if (l <= g_cpu_compare) {  // agreement with the CPU selector at this size
          sieve::Timer t;
          const sieve::attention::SparsePattern hp = r.sel->select(w.q, w.k, o);
          const double cpu_s = t.seconds();
          const sieve::attention::SparsePattern gp = r.dp.download();
          const bool same_shape = hp.block_indptr.size() == gp.block_indptr.size();
          const cu::DevicePattern hd = cu::DevicePattern::upload(hp);
          const cu::DeviceRecall rc = cu::pattern_recall(q, k, hd.view(), o, stride);
          const cu::DeviceRecall rg = cu::pattern_recall(q, k, r.dp.view(), o, stride);
          std::printf("cpu-compare %s L=%ld: %ld/%ld rows differ, density cpu %.4f gpu %.4f, recall_mean cpu "
                      "%.4f gpu %.4f (cpu select %.1f s)\n",
                      r.impl.c_str(), long(l), same_shape ? long(differing_rows(hp, gp)) : -1L,
                      long(hp.block_indptr.size()) - 1, hp.block_density(), gp.block_density(), rc.mean, rg.mean,
                      cpu_s);
          std::fflush(stdout);
        }
        cu::set_estimate_path(saved);
      }
      exec(r.dp);  // `out` holds this pattern's output for the families' comparison
      const sieve::attention::SparsePattern pat = r.dp.download();
      const cu::DeviceRecall rec = cu::pattern_recall(q, k, r.dp.view(), o, stride);
      char note[320];
      std::snprintf(note, sizeof note,
                    "select=%.3f ms (%.2f%% of dense) exec=%.3f ms recall_mean=%.4f recall_min=%.4f "
                    "token_rows=%ld selector_on=%s timing=%s",
                    sel_ms, 100.0 * sel_ms / dense_ms, exec_ms, rec.mean, rec.min, long(rec.rows), where,
                    !r.on_gpu ? "host" : pipelined() ? "pipelined" : "idle");
      emit({"e2e", r.impl, l, pat.block_density(), sel_ms + exec_ms, flops / (sel_ms + exec_ms) * 1e-9, note});
      if (g_exec_split > 1) {  // the split-key experiment against the same pattern, adjacent
        SplitExec e = make_split(pat, g_exec_split, s.d);
        if (e.parts.empty()) {
          std::printf("e2e_split %s skipped: not a plain square block pattern\n", r.impl.c_str());
        } else {
          const sieve::Tensor ref = out.to_host();
          const int parts = int(e.parts.size());
          const auto run_split = [&] {
            for (int p = 0; p < parts; ++p) {
              TensorView qp = q.view();
              qp.data = qp.ptr(0, e.row0[size_t(p)]);
              qp.shape[1] = l - e.row0[size_t(p)];
              const TensorView lse = e.lses[size_t(p)].view();
              cu::block_sparse_attention(qp, k, v, e.parts[size_t(p)].view(), e.outs[size_t(p)], o, &lse);
            }
            for (int p = parts - 1; p >= 1; --p)
              sieve::bench::merge_lse_bf16(e.outs[size_t(p - 1)].view().data,
                                           static_cast<float*>(e.lses[size_t(p - 1)].view().data),
                                           e.outs[size_t(p)].view().data,
                                           static_cast<const float*>(e.lses[size_t(p)].view().data),
                                           int(s.hq), l - e.row0[size_t(p - 1)], l - e.row0[size_t(p)],
                                           e.row0[size_t(p)] - e.row0[size_t(p - 1)], int(s.d), p > 1,
                                           nullptr);
          };
          const double whole = median_ms([&] { exec(r.dp); }, 1, iters_for(l));
          const double split = median_ms(run_split, 1, iters_for(l));
          const double whole2 = median_ms([&] { exec(r.dp); }, 1, iters_for(l));
          run_split();
          const double diff = max_abs_diff_bf16(e.outs[0].to_host(), ref);
          char snote[240];
          std::snprintf(snote, sizeof snote,
                        "%d key ranges, merged by LSE; whole-pattern executor %.3f / %.3f ms before / after "
                        "(split / mean %.4f); max|out - whole's| %.3g",
                        parts, whole, whole2, split / (0.5 * (whole + whole2)), diff);
          emit({"e2e_split", r.impl, l, pat.block_density(), split, flops / split * 1e-9, snote});
        }
      }
      // Up to 32K the families' outputs are also compared with the auto run's (max |difference|).
      const bool compare = !g_exec_families.empty() && l <= 32768;
      const sieve::Tensor ref = compare ? out.to_host() : sieve::Tensor();
      for (const std::string& fam : g_exec_families) {
        cu::set_kernel_preference(fam);
        try {
          const char* kernel = cu::kernel_info(DType::kBF16, s.d, r.dp.view().block_k, pat.has_columns()).name;
          const double ms = median_ms([&] { exec(r.dp); }, 1, iters_for(l));
          const double diff = compare ? max_abs_diff_bf16(out.to_host(), ref) : -1.0;
          char fnote[200];
          std::snprintf(fnote, sizeof fnote, "executor only, kernel %s%s; max|out - auto's| %s%.3g", kernel,
                        pat.has_columns() ? ", token columns" : "", compare ? "" : "(not compared) ", diff);
          emit({"e2e_exec", r.impl + "@" + fam, l, pat.block_density(), ms, flops / ms * 1e-9, fnote});
        } catch (const sieve::Error& e) {
          std::printf("e2e_exec %s@%s skipped: %s\n", r.impl.c_str(), fam.c_str(), e.what());
        }
        cu::set_kernel_preference("auto");
      }
      r.dp = cu::DevicePattern();  // free before the next row's work
    }
    char drift[160];
    std::snprintf(drift, sizeof drift,
                  "our dense kernel again, right after the timed methods (%+.1f%% against the first "
                  "reading)",
                  100.0 * (dense_after_ms / dense_ms - 1.0));
    emit({"e2e", "sieve_dense_after", l, 1.0, dense_after_ms, flops / dense_after_ms * 1e-9, drift});
  }
}

constexpr const char* kUsage =
    "Times sieve's CUDA attention kernels on one GPU; CSV rows for bench_attention.py\n"
    "Usage: bench_attention_cuda --csv FILE [--dense 8192,32768] [--sparse 32768,131072]\n"
    "         [--densities 1,0.5,0.2,0.1] [--variants 8192,32768] [--heads 32 --kv-heads 8]\n"
    "         [--e2e 8192,131072] [--methods rr,unisparse,streaming,sample]\n"
    "         [--estimates wgmma-pp,wgmma-tma] [--families mma,auto] [--cpu-select-max 131072]\n"
    "         [--profile 1] [--cpu-compare 32768] [--exec-families wgmma,fa3]\n"
    "         [--e2e-order grouped|interleaved] [--e2e-gap-ms 0] [--min-warm-ms 250]\n"
    "         [--e2e-warm-ms <--min-warm-ms>] [--exec-split 2] [--e2e-timing pipelined|idle]\n"
    "A method may carry settings after '@' (rr@outliers=1); see the comment at the top of\n"
    "bench/gpu/bench_attention_cuda.cpp and docs/cuda.md for what each option times.\n";

}  // namespace

int main(int argc, char** argv) {
  std::string& csv = g_csv;
  std::vector<int64_t> dense, sparse, variants, e2e;
  // rr / unisparse are timed on the library's current estimate path (SIEVE_GPU_ESTIMATE or the
  // default, wgmma-tma on Hopper) unless --estimates lists paths to compare
  std::vector<std::string> estimates{cu::estimate_path()};
  int64_t cpu_max = 131072;
  std::vector<std::string> methods{"rr", "unisparse", "streaming", "sample"};
  std::vector<double> densities{1.0, 0.5, 0.2, 0.1};
  Shape s;
  using sieve::bench::arg_double_list;
  using sieve::bench::arg_int;
  using sieve::bench::arg_int_list;
  using sieve::bench::arg_string_list;
  const int rc = sieve::bench::parse_options(
      "bench_attention_cuda", kUsage, argc, argv, [&](const std::string& a, const std::string& v) {
        if (a == "--csv") csv = v;
        else if (a == "--dense") dense = arg_int_list(a, v);
        else if (a == "--sparse") sparse = arg_int_list(a, v);
        else if (a == "--variants") variants = arg_int_list(a, v);
        else if (a == "--e2e") e2e = arg_int_list(a, v);
        else if (a == "--methods") methods = arg_string_list(v);
        else if (a == "--densities") densities = arg_double_list(a, v);
        else if (a == "--estimates") estimates = arg_string_list(v);
        else if (a == "--families") g_families = arg_string_list(v);
        else if (a == "--cpu-select-max") cpu_max = arg_int(a, v);
        else if (a == "--profile") g_profile = v != "0";
        else if (a == "--cpu-compare") g_cpu_compare = arg_int(a, v);
        else if (a == "--min-warm-ms") {
          g_min_warm_ms = double(arg_int(a, v));
          SIEVE_CHECK(g_min_warm_ms >= 0 && g_min_warm_ms <= 60000, "--min-warm-ms takes 0-60000, got {}", v);
        } else if (a == "--e2e-warm-ms") {
          g_e2e_warm_ms = double(arg_int(a, v));
          SIEVE_CHECK(g_e2e_warm_ms >= 0 && g_e2e_warm_ms <= 60000, "--e2e-warm-ms takes 0-60000, got {}",
                      v);
        } else if (a == "--exec-split") {
          g_exec_split = int(arg_int(a, v));
          SIEVE_CHECK(g_exec_split >= 0 && g_exec_split <= 8, "--exec-split takes 0-8, got {}", v);
        } else if (a == "--e2e-gap-ms") {
          g_e2e_gap_ms = arg_int(a, v);
          SIEVE_CHECK(g_e2e_gap_ms >= 0 && g_e2e_gap_ms <= 10000, "--e2e-gap-ms takes 0-10000, got {}",
                      g_e2e_gap_ms);
        } else if (a == "--e2e-timing") {
          SIEVE_CHECK(v == "pipelined" || v == "idle", "--e2e-timing takes idle or pipelined, got '{}'", v);
          g_e2e_pipelined = v == "pipelined";
        } else if (a == "--e2e-order") {
          SIEVE_CHECK(v == "interleaved" || v == "grouped", "--e2e-order takes grouped or interleaved, got '{}'", v);
          g_e2e_interleaved = v == "interleaved";
        }
        else if (a == "--exec-families") {
          for (std::string& f : arg_string_list(v)) g_exec_families.push_back(std::move(f));
        } else if (a == "--heads") s.hq = arg_int(a, v);
        else if (a == "--kv-heads") s.hkv = arg_int(a, v);
        else SIEVE_FAIL("unknown argument {}", a);
      });
  if (rc != 0) return rc == sieve::bench::kHelpShown ? 0 : rc;
  try {
    if (cu::device_count() == 0) {
      std::fprintf(stderr, "bench_attention_cuda: no CUDA device\n");
      return 1;
    }
    cudaDeviceProp prop{};
    SIEVE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs, %zu KB smem/block opt-in, L2 %d MB\n", prop.name, prop.multiProcessorCount,
                prop.sharedMemPerBlockOptin / 1024, prop.l2CacheSize >> 20);
    bench_variants(s, variants);
    bench_dense(s, dense);
    bench_sparse(s, sparse, densities);
    bench_e2e(s, e2e, methods, estimates, cpu_max);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention_cuda: error: %s\n", e.what());
    write_csv();
    return 1;
  }
  write_csv();
  return 0;
}
