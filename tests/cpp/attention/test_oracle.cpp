// Oracle block pattern: mean recall (measured by pattern_recall, the f64 metric) reaches the share;
// the cut is minimal per query block (checked against block masses recomputed here in plain f64);
// density grows with the share; bad arguments are clear errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "sieve/attention/metrics.h"
#include "sieve/attention/oracle.h"
#include "sieve/attention/synthetic.h"
#include "sieve/core/error.h"

namespace sieve::attention {
namespace {

struct Input {
  SyntheticWorkload w;
  AttentionShape shape;
};

Input planted() {
  SyntheticConfig c;
  c.num_heads_q = 4;
  c.num_heads_kv = 2;
  c.seq_len = 640;  // 10 blocks of 64, the last one full
  c.head_dim = 64;
  c.local_window = 64;
  c.seed = 5;
  Input in{make_synthetic(c), {}};
  in.shape = {4, 2, 640, 640, 64};
  return in;
}

// Exact f64 block masses of one query block: sum over its rows of each row's softmax mass per key block.
std::vector<double> block_masses(const Input& in, int64_t h, int64_t qb, int block) {
  const int64_t L = in.shape.seq_len_q, D = in.shape.head_dim, g = 2;
  const TensorView q = in.w.q.view(), k = in.w.k.view();
  std::vector<double> m(size_t((L + block - 1) / block), 0.0);
  for (int64_t i = qb * block; i < std::min<int64_t>(L, (qb + 1) * block); ++i) {
    std::vector<double> s(size_t(i + 1));
    double mx = -1e300, total = 0;
    for (int64_t j = 0; j <= i; ++j) {
      double dot = 0;
      for (int64_t e = 0; e < D; ++e) dot += double(q.get(h, i, e)) * double(k.get(h / g, j, e));
      s[size_t(j)] = dot / std::sqrt(double(D));
      mx = std::max(mx, s[size_t(j)]);
    }
    for (double& x : s) total += (x = std::exp(x - mx));
    for (int64_t j = 0; j <= i; ++j) m[size_t(j / block)] += s[size_t(j)] / total;
  }
  return m;
}

TEST(Oracle, RecallReachesTheShareAndDensityGrows) {
  const Input in = planted();
  const std::vector<int64_t> rows = strided_rows(640, 1);
  double last_density = 0;
  for (double share : {0.5, 0.8, 0.95, 1.0}) {
    const SparsePattern p = oracle_pattern(in.w.q.view(), in.w.k.view(), in.shape, rows, share, 64);
    EXPECT_NO_THROW(p.validate());
    const PatternMetrics m = pattern_recall(in.w.q.view(), in.w.k.view(), p, AttentionOptions{});
    // 1e-6: the oracle scores in f32 dot products, the metric in f64.
    EXPECT_GE(m.recall_mean, share - 1e-6) << "share " << share;
    EXPECT_GE(p.block_density(), last_density) << "share " << share;
    last_density = p.block_density();
  }
  EXPECT_DOUBLE_EQ(last_density, 1.0);  // share 1 keeps every causal block (all carry mass)
}

TEST(Oracle, CutIsMinimalPerQueryBlock) {
  const Input in = planted();
  const double share = 0.8;
  const int block = 64;
  const SparsePattern p =
      oracle_pattern(in.w.q.view(), in.w.k.view(), in.shape, strided_rows(640, 1), share, block);
  int checked = 0;
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t qb = 0; qb < p.num_q_blocks(); ++qb) {
      const std::vector<double> m = block_masses(in, h, qb, block);
      double total = 0, kept = 0, smallest_optional = 1e300;
      for (int64_t b = 0; b <= qb; ++b) total += m[size_t(b)];
      for (int32_t i = p.block_indptr[size_t(p.row(h, qb))]; i < p.block_indptr[size_t(p.row(h, qb)) + 1]; ++i) {
        const int32_t b = p.block_indices[size_t(i)];
        kept += m[size_t(b)];
        if (b != 0 && b != qb) smallest_optional = std::min(smallest_optional, m[size_t(b)]);
      }
      EXPECT_GE(kept, share * total * (1 - 1e-6)) << "h " << h << " qb " << qb;
      if (smallest_optional < 1e300) {  // dropping any optional block falls below the share
        EXPECT_LT(kept - smallest_optional, share * total * (1 + 1e-6)) << "h " << h << " qb " << qb;
        ++checked;
      }
    }
  EXPECT_GT(checked, 10);  // the test has blocks to check
}

TEST(Oracle, BadArgumentsAreClearErrors) {
  const Input in = planted();
  const auto rows = strided_rows(640, 1);
  const TensorView q = in.w.q.view(), k = in.w.k.view();
  EXPECT_THROW(oracle_pattern(q, k, in.shape, rows, 0.0), Error);
  EXPECT_THROW(oracle_pattern(q, k, in.shape, rows, 1.5), Error);
  EXPECT_THROW(oracle_pattern(q, k, in.shape, rows, 0.9, 0), Error);
  EXPECT_THROW(oracle_pattern(q, k, in.shape, {640}, 0.9), Error);
  AttentionShape bad = in.shape;
  bad.num_heads_kv = 3;
  EXPECT_THROW(oracle_pattern(q, k, bad, rows, 0.9), Error);
}

}  // namespace
}  // namespace sieve::attention
