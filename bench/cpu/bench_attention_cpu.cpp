// CPU attention benchmark: dense FlashAttention-2 kernel throughput against OpenBLAS sgemm on the
// same work in the same run, and block-sparse executor time against density.
//
// FLOPs of causal attention are counted as the two GEMMs over the computed (causal) pairs only:
//   flops = 4 * heads * head_dim * (number of (i, j) pairs with j <= i) = 4 H D L (L + 1) / 2,
// i.e. dense-equivalent FLOPs of the lower triangle (softmax work is not counted).
// The sgemm peer runs exactly the GEMMs an unfused causal attention would: per head and per block
// of 512 queries, S = Q_b K[:end]^T then O = S V[:end] (end = last key the block sees), timed as
// one job; its FLOP rate (its own FLOPs / its time) is the ceiling the kernel is compared with.
//
// Usage: bench_attention_cpu [--quick] [--threads N] [--heads H] [--lengths 4096,8192]
//                            [--sparse-length L] [--block B]
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "sieve/attention/executor.h"
#include "sieve/core/rng.h"
#include "sieve/core/tensor.h"
#include "sieve/core/threading.h"
#include "sieve/core/timer.h"

#include "common/bench_args.h"

#ifdef SIEVE_HAVE_OPENBLAS
#include <cblas.h>
#endif

using namespace sieve;
using namespace sieve::attention;

namespace {

struct Options {
  bool quick = false;
  int threads = 0;
  int64_t heads = 2;
  int64_t head_dim = 128;
  std::vector<int64_t> lengths = {4096, 8192, 16384, 32768};
  int64_t sparse_length = 16384;
  int block = 128;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value after %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") {
      o.quick = true;
      o.lengths = {2048, 4096};
      o.sparse_length = 4096;
    } else if (a == "--threads") {
      o.threads = int(sieve::bench::arg_int(a, next()));
    } else if (a == "--heads") {
      o.heads = sieve::bench::arg_int(a, next());
    } else if (a == "--lengths") {
      o.lengths = sieve::bench::arg_int_list(a, next());
    } else if (a == "--sparse-length") {
      o.sparse_length = sieve::bench::arg_int(a, next());
    } else if (a == "--block") {
      o.block = int(sieve::bench::arg_int(a, next()));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--threads N] [--heads H] [--lengths a,b] "
                   "[--sparse-length L] [--block B]\n",
                   argv[0]);
      std::exit(2);
    }
  }
  return o;
}

Tensor random_tensor(DType dt, int64_t h, int64_t l, int64_t d, uint64_t seed) {
  Tensor f(DType::kF32, {h, l, d});
  Rng rng(seed);
  float* p = f.data_as<float>();
  for (int64_t i = 0; i < f.numel(); ++i) p[i] = float(rng.normal());
  return dt == DType::kF32 ? f : Tensor::from(f.view(), dt);
}

// Wall-clock and process CPU seconds of one piece of work.
struct Seconds {
  double wall = 0, cpu = 0;
};

double process_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

class Stopwatch {
 public:
  Seconds elapsed() const { return {wall_.seconds(), process_cpu_seconds() - cpu0_}; }

 private:
  Timer wall_;
  double cpu0_ = process_cpu_seconds();
};

double causal_flops(int64_t heads, int64_t len, int64_t d) {
  return 4.0 * double(heads) * double(d) * double(len) * double(len + 1) / 2.0;
}

#ifdef SIEVE_HAVE_OPENBLAS
// Unfused causal attention GEMMs (no softmax) for `heads` heads: GFLOP/s of its own FLOPs per
// wall-clock second and per CPU second.
Seconds sgemm_rate(int64_t heads, int64_t len, int64_t d) {
  const int64_t bq = 512;
  Tensor q = random_tensor(DType::kF32, 1, len, d, 1), k = random_tensor(DType::kF32, 1, len, d, 2),
         v = random_tensor(DType::kF32, 1, len, d, 3);
  Tensor s(DType::kF32, {bq, len}), o(DType::kF32, {bq, d});
  double flops = 0;
  Stopwatch t;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t r0 = 0; r0 < len; r0 += bq) {
      const int64_t rows = std::min(bq, len - r0), end = r0 + rows;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(end), int(d), 1.0f,
                  q.data_as<float>() + r0 * d, int(d), k.data_as<float>(), int(d), 0.0f,
                  s.data_as<float>(), int(end));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(d), int(end), 1.0f,
                  s.data_as<float>(), int(end), v.data_as<float>(), int(d), 0.0f,
                  o.data_as<float>(), int(d));
      flops += 4.0 * double(rows) * double(end) * double(d);
    }
  }
  const Seconds sec = t.elapsed();
  return {flops / sec.wall / 1e9, flops / sec.cpu / 1e9};
}

double square_sgemm_rate(int64_t n) {
  Tensor a = random_tensor(DType::kF32, 1, n, n, 4), b = random_tensor(DType::kF32, 1, n, n, 5),
         c(DType::kF32, {n, n});
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.0f,
              a.data_as<float>(), int(n), b.data_as<float>(), int(n), 0.0f, c.data_as<float>(),
              int(n));  // warm-up
  Timer t;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.0f,
              a.data_as<float>(), int(n), b.data_as<float>(), int(n), 0.0f, c.data_as<float>(),
              int(n));
  return 2.0 * double(n) * double(n) * double(n) / t.seconds() / 1e9;
}
#endif

// Seconds of one causal dense_attention call (best of 3 for short sequences).
Seconds time_dense(DType dt, int64_t heads, int64_t len, int64_t d) {
  Tensor q = random_tensor(dt, heads, len, d, 11), k = random_tensor(dt, heads, len, d, 12),
         v = random_tensor(dt, heads, len, d, 13), out(dt, {heads, len, d});
  const int reps = len <= 4096 ? 3 : 1;
  Seconds best{1e30, 1e30};
  for (int r = 0; r < reps; ++r) {
    Stopwatch t;
    dense_attention(q, k, v, out, {});
    const Seconds s = t.elapsed();
    if (s.wall < best.wall) best = s;
  }
  return best;
}

// Each causal tile kept with probability `density`; the diagonal tile is always kept.
SparsePattern random_causal_pattern(int heads, int64_t len, int block, double density,
                                    uint64_t seed) {
  SparsePattern p = SparsePattern::dense(heads, len, len, block, block, true);
  if (density >= 1.0) return p;
  Rng rng(seed);
  std::vector<int32_t> indptr = {0}, indices;
  for (size_t r = 0; r + 1 < p.block_indptr.size(); ++r) {
    const int32_t b = p.block_indptr[r], e = p.block_indptr[r + 1];
    for (int32_t t = b; t < e; ++t)
      if (t == e - 1 || rng.uniform() < density) indices.push_back(p.block_indices[size_t(t)]);
    indptr.push_back(int32_t(indices.size()));
  }
  p.block_indptr = indptr;
  p.block_indices = indices;
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 2;
  }
  set_num_threads(o.threads);
  const int threads = num_threads();
#ifdef SIEVE_HAVE_OPENBLAS
  openblas_set_num_threads(threads);
#endif
  double load[3] = {0, 0, 0};
  if (std::ifstream f("/proc/loadavg"); f) f >> load[0] >> load[1] >> load[2];
  std::printf("# CPU attention benchmark\n\n");
  std::printf("kernel path: %s; threads: %d; heads: %lld (q = kv); head_dim: %lld; causal; "
              "load average at start: %.2f %.2f %.2f\n\n",
              cpu_kernel_isa(), threads, (long long)o.heads, (long long)o.head_dim, load[0],
              load[1], load[2]);

  // warm-up: OpenMP thread pool, page faults of the allocator
  (void)time_dense(DType::kF32, 1, 512, o.head_dim);

  std::printf("## Dense kernel vs OpenBLAS sgemm on the same GEMM work\n\n");
#ifdef SIEVE_HAVE_OPENBLAS
  std::printf("square sgemm 2048^3: %.1f GFLOP/s\n\n", square_sgemm_rate(2048));
#endif
  std::printf("Wall-clock rates; the last two columns divide FLOPs by process CPU seconds instead "
              "(less sensitive to other load on the machine).\n\n");
  std::printf("| L | sgemm GFLOP/s | f32 ms | f32 GFLOP/s | f32 / sgemm | bf16 ms | bf16 GFLOP/s | "
              "bf16 / sgemm | f32 / sgemm (CPU s) | bf16 / sgemm (CPU s) |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t len : o.lengths) {
    const double flops = causal_flops(o.heads, len, o.head_dim);
    Seconds peer{0, 0};
#ifdef SIEVE_HAVE_OPENBLAS
    peer = sgemm_rate(o.heads, len, o.head_dim);
#endif
    const Seconds t32 = time_dense(DType::kF32, o.heads, len, o.head_dim);
    const Seconds t16 = time_dense(DType::kBF16, o.heads, len, o.head_dim);
    const double r32 = flops / t32.wall / 1e9, r16 = flops / t16.wall / 1e9;
    const double c32 = flops / t32.cpu / 1e9, c16 = flops / t16.cpu / 1e9;
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    std::printf("| %lld | %.1f | %.0f | %.1f | %.2f | %.0f | %.1f | %.2f | %.2f | %.2f |\n",
                (long long)len, peer.wall, t32.wall * 1e3, r32, ratio(r32, peer.wall),
                t16.wall * 1e3, r16, ratio(r16, peer.wall), ratio(c32, peer.cpu),
                ratio(c16, peer.cpu));
    std::fflush(stdout);
  }

  std::printf("\n## Block-sparse executor time vs density (f32, L = %lld, blocks %dx%d, random "
              "causal tiles + diagonal)\n\n",
              (long long)o.sparse_length, o.block, o.block);
  const int64_t L = o.sparse_length, H = o.heads, D = o.head_dim;
  Tensor q = random_tensor(DType::kF32, H, L, D, 21), k = random_tensor(DType::kF32, H, L, D, 22),
         v = random_tensor(DType::kF32, H, L, D, 23), out(DType::kF32, {H, L, D});
  Stopwatch td;
  dense_attention(q, k, v, out, {});
  const Seconds t_dense = td.elapsed();
  Seconds t_full;
  std::printf("dense_attention: %.0f ms (%.2f CPU s)\n\n", t_dense.wall * 1e3, t_dense.cpu);
  std::printf("| requested density | block density | token density | ms | / full pattern | "
              "/ dense_attention | / full pattern (CPU s) |\n|---|---|---|---|---|---|---|\n");
  for (double density : {1.0, 0.5, 0.25, 0.1}) {
    const SparsePattern p = random_causal_pattern(int(H), L, o.block, density, 31);
    Stopwatch t;
    block_sparse_attention(q, k, v, p, out, {});
    const Seconds sec = t.elapsed();
    if (density >= 1.0) t_full = sec;
    std::printf("| %.2f | %.3f | %.3f | %.0f | %.3f | %.3f | %.3f |\n", density,
                p.block_density(), p.token_density(), sec.wall * 1e3, sec.wall / t_full.wall,
                sec.wall / t_dense.wall, sec.cpu / t_full.cpu);
    std::fflush(stdout);
  }
  return 0;
}
