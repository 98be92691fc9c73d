// Selector cost on the CPU, against the dense executor measured in the same run (usage: kUsage).
//
// Part 1: RRAttention's estimator at strides S = 8, 16, 32 at one length. Its scoring is
// (L/S)^2 stride pairs, so the time should fall ~4x per doubling of S until the O(L D) passes
// over K and Q (staging, stride representatives) dominate; both the whole select() and the
// expected 1/S^2 ratio are printed.
// Part 2: every selector's select() time as a share of the dense executor's time on the same
// planted-suite inputs (default settings, dense fallback disabled), at each length.
// Times are the best of --repeat runs.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sieve/attention/executor.h"
#include "sieve/attention/selector.h"
#include "sieve/attention/synthetic.h"
#include "sieve/core/threading.h"
#include "sieve/core/timer.h"

#include "common/bench_args.h"

using namespace sieve;
using namespace sieve::attention;

namespace {

template <class F>
double best_ms(int repeat, F&& f) {
  double best = 1e300;
  for (int r = 0; r < repeat; ++r) {
    Timer t;
    f();
    best = std::min(best, t.ms());
  }
  return best;
}

SyntheticWorkload workload(int64_t length, int64_t heads, int64_t kv_heads) {
  SyntheticConfig c;
  c.seq_len = length;
  c.num_heads_q = heads;
  c.num_heads_kv = kv_heads;
  return make_synthetic(c);
}

constexpr const char* kUsage =
    "Selector cost on the CPU against the dense executor, in the same run\n"
    "Usage: bench_selectors [--lengths 16384,32768] [--heads 2] [--kv-heads 1] [--repeat 3]\n"
    "                       [--threads 0] [--rr-length 32768] [--strides 8,16,32]\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths = {16384, 32768}, strides = {8, 16, 32};
  int64_t heads = 2, kv_heads = 1, rr_length = 32768;
  int repeat = 3, threads = 0;
  using sieve::bench::arg_int;
  using sieve::bench::arg_int_list;
  const int rc = sieve::bench::parse_options(
      "bench_selectors", kUsage, argc, argv, [&](const std::string& a, const std::string& v) {
        if (a == "--lengths") lengths = arg_int_list(a, v);
        else if (a == "--strides") strides = arg_int_list(a, v);
        else if (a == "--heads") heads = arg_int(a, v);
        else if (a == "--kv-heads") kv_heads = arg_int(a, v);
        else if (a == "--rr-length") rr_length = arg_int(a, v);
        else if (a == "--repeat") repeat = int(arg_int(a, v));
        else if (a == "--threads") threads = int(arg_int(a, v));
        else SIEVE_FAIL("unknown option {}", a);
      });
  if (rc != 0) return rc == sieve::bench::kHelpShown ? 0 : rc;
  set_num_threads(threads);
  const AttentionOptions opts;
  std::printf("bench_selectors: bf16, D=128, Hq=%lld, Hkv=%lld, %d threads, executor isa %s, best of %d\n\n",
              (long long)heads, (long long)kv_heads, num_threads(), cpu_kernel_isa(), repeat);

  // Part 1: rr stride scaling.
  {
    const SyntheticWorkload w = workload(rr_length, heads, kv_heads);
    std::printf("RRAttention estimator vs stride at L=%lld\n", (long long)rr_length);
    std::printf("%8s %12s %14s %16s\n", "stride", "select_ms", "ratio_vs_first", "expected_1/S^2");
    double first = 0;
    for (int64_t s : strides) {
      auto sel = make_selector("rr", {"dense_below=0", "stride=" + std::to_string(s)});
      const double ms = best_ms(repeat, [&] { sel->select(w.q, w.k, opts); });
      if (first == 0) first = ms;
      const double expect = double(strides[0] * strides[0]) / double(s * s);
      std::printf("%8lld %12.2f %14.4f %16.4f\n", (long long)s, ms, ms / first, expect);
    }
    std::printf("\n");
  }

  // Part 2: selector share of the dense executor.
  for (int64_t L : lengths) {
    const SyntheticWorkload w = workload(L, heads, kv_heads);
    Tensor out(DType::kF32, {heads, L, 128});
    const double dense_ms = best_ms(repeat, [&] { dense_attention(w.q, w.k, w.v, out, opts); });
    std::printf("L=%lld: dense executor %.1f ms\n", (long long)L, dense_ms);
    std::printf("%-12s %12s %14s\n", "method", "select_ms", "share_of_dense");
    for (const std::string& name : selector_names()) {
      if (name == "dense") continue;
      auto sel = make_selector(name, {"dense_below=0"});
      const double ms = best_ms(repeat, [&] { sel->select(w.q, w.k, opts); });
      std::printf("%-12s %12.2f %13.2f%%\n", name.c_str(), ms, 100.0 * ms / dense_ms);
    }
    std::printf("\n");
  }
  return 0;
}
