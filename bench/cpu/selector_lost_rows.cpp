// Which query rows a selector loses on the planted suite, and where their attention mass is
// (usage: kUsage).
//
// Builds the planted suite of `sieve attn` (make_synthetic at kSuiteStrength), runs the selector
// at its default settings, and for every head evaluates the rows `sieve attn` evaluates
// (strided_rows: every --row-stride-th row, counted back from the last) against the exact f64
// softmax. Per head it prints how many rows keep less than --below of their mass, and for the
// --show worst of them their recall, their three heaviest keys (key, probability, offset = query
// position - key position) and the planted needle run they belong to, if any. Used for the
// "lost rows" analysis in docs/results/selectors.md; a diagnostic, not a timed benchmark.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "sieve/attention/metrics.h"
#include "sieve/attention/selector.h"
#include "sieve/attention/synthetic.h"
#include "sieve/core/threading.h"

#include "common/bench_args.h"

using namespace sieve;
using namespace sieve::attention;

namespace {
constexpr const char* kUsage =
    "Which query rows a selector loses on the planted suite, and where their mass is\n"
    "Usage: selector_lost_rows [--method rr] [--length 32768] [--heads 8] [--kv-heads 2]\n"
    "                          [--seed 0] [--row-stride 16] [--below 0.5] [--show 12] [--threads 0]\n";
}  // namespace

int main(int argc, char** argv) {
  std::string method = "rr";
  int64_t length = 32768, heads = 8, kv_heads = 2, seed = 0, row_stride = 16, show = 12;
  double below = 0.5;
  int threads = 0;
  using sieve::bench::arg_double;
  using sieve::bench::arg_int;
  const int rc = sieve::bench::parse_options(
      "selector_lost_rows", kUsage, argc, argv, [&](const std::string& a, const std::string& v) {
        if (a == "--method") method = v;
        else if (a == "--length") length = arg_int(a, v);
        else if (a == "--heads") heads = arg_int(a, v);
        else if (a == "--kv-heads") kv_heads = arg_int(a, v);
        else if (a == "--seed") seed = arg_int(a, v);
        else if (a == "--row-stride") row_stride = arg_int(a, v);
        else if (a == "--below") below = arg_double(a, v);
        else if (a == "--show") show = arg_int(a, v);
        else if (a == "--threads") threads = int(arg_int(a, v));
        else SIEVE_FAIL("unknown option {}", a);
      });
  if (rc != 0) return rc == sieve::bench::kHelpShown ? 0 : rc;
  try {
    SIEVE_CHECK(row_stride >= 1 && show >= 0, "--row-stride must be >= 1 and --show >= 0");
    set_num_threads(threads);
    SyntheticConfig c;
    c.num_heads_q = heads;
    c.num_heads_kv = kv_heads;
    c.seq_len = length;
    c.head_dim = 128;
    c.seed = uint64_t(seed);
    c.strength = kSuiteStrength;
    c.dtype = DType::kBF16;
    const SyntheticWorkload w = make_synthetic(c);
    const AttentionOptions opts;
    const SparsePattern pat = make_selector(method)->select(w.q.view(), w.k.view(), opts);
    const int64_t D = c.head_dim, group = heads / kv_heads;
    const double scale = 1.0 / std::sqrt(double(D));
    const std::vector<int64_t> rows = strided_rows(length, row_stride);
    std::printf("%s, planted suite L=%lld, %lld / %lld heads, seed %lld, %zu rows per head\n", method.c_str(),
                static_cast<long long>(length), static_cast<long long>(heads), static_cast<long long>(kv_heads),
                static_cast<long long>(seed), rows.size());
    std::vector<double> kf(size_t(length * D)), p;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t hk = h / group;
      for (int64_t j = 0; j < length; ++j)
        for (int64_t d = 0; d < D; ++d) kf[size_t(j * D + d)] = w.k.view().get(hk, j, d);
      // Exact causal softmax of row i into prob[0..i].
      const auto softmax_row = [&](int64_t i, std::vector<double>& prob) {
        std::vector<double> qf(static_cast<size_t>(D));
        for (int64_t d = 0; d < D; ++d) qf[size_t(d)] = w.q.view().get(h, i, d);
        prob.assign(size_t(i + 1), 0.0);
        double mx = -INFINITY, tot = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double a = 0;
          for (int64_t d = 0; d < D; ++d) a += qf[size_t(d)] * kf[size_t(j * D + d)];
          prob[size_t(j)] = a * scale;
          mx = std::max(mx, prob[size_t(j)]);
        }
        for (double& x : prob) tot += (x = std::exp(x - mx));
        for (double& x : prob) x /= tot;
      };
      std::vector<std::pair<double, int64_t>> lost;  // (recall, row)
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 8)
      for (size_t r = 0; r < rows.size(); ++r) {
        const int64_t i = rows[r];
        std::vector<double> prob;
        softmax_row(i, prob);
        double kept = 0;
        for (int64_t j = 0; j <= i; ++j)
          if (pat.contains(h, i, j)) kept += prob[size_t(j)];
        if (kept < below) {
#pragma omp critical
          lost.emplace_back(kept, i);
        }
      }
      std::sort(lost.begin(), lost.end());
      std::printf("head %lld (%s): %zu of %zu rows below recall %.2f\n", static_cast<long long>(h),
                  w.planted.head_kind[size_t(h)].c_str(), lost.size(), rows.size(), below);
      for (size_t n = 0; n < std::min(lost.size(), size_t(show)); ++n) {
        const int64_t i = lost[n].second;
        softmax_row(i, p);
        std::vector<int64_t> top(size_t(i + 1));
        for (int64_t j = 0; j <= i; ++j) top[size_t(j)] = j;
        const size_t k3 = std::min<size_t>(3, top.size());
        std::partial_sort(top.begin(), top.begin() + long(k3), top.end(),
                          [&](int64_t a, int64_t b) { return p[size_t(a)] > p[size_t(b)]; });
        std::printf("  row %lld (block %lld +%lld) recall %.4f; heaviest keys:", static_cast<long long>(i),
                    static_cast<long long>(i / pat.block_q), static_cast<long long>(i % pat.block_q), lost[n].first);
        for (size_t t = 0; t < k3; ++t)
          std::printf(" %lld (p %.3f, offset %lld)", static_cast<long long>(top[t]), p[size_t(top[t])],
                      static_cast<long long>(i - top[t]));
        for (const PlantedStructure::Needle& nd : w.planted.needles)
          if (nd.head_kv == hk && i >= nd.query_begin && i < nd.query_end)
            std::printf("; needle key %lld, run [%lld, %lld)", static_cast<long long>(nd.key),
                        static_cast<long long>(nd.query_begin), static_cast<long long>(nd.query_end));
        std::printf("\n");
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "selector_lost_rows: %s\n", e.what());
    return 1;
  }
  return 0;
}
