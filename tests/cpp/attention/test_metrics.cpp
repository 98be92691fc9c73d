// Metrics against independent f64 arithmetic written out here: per-row softmax recall with
// pattern.contains() as the membership oracle (per query head and per KV head, columns and band
// overlapping blocks, causal/non-causal, a query chunk against a longer cache, row sampling), the
// exact output rows, and closed forms for rel_error/cosine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "sieve/attention/metrics.h"
#include "sieve/core/error.h"
#include "sieve/core/rng.h"

using namespace sieve;
using namespace sieve::attention;

namespace {

Tensor random_tensor(int64_t h, int64_t l, int64_t d, uint64_t seed, double sd) {
  Tensor t(DType::kF32, {h, l, d});
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = float(sd * rng.normal());
  return t;
}

// Random valid pattern with blocks, columns and a band (all overlapping each other).
SparsePattern random_pattern(int heads, int64_t lq, int64_t lk, int bq, int bk, bool causal,
                             bool per_kv, uint64_t seed) {
  SparsePattern p;
  p.seq_len_q = lq;
  p.seq_len_k = lk;
  p.block_q = bq;
  p.block_k = bk;
  p.num_heads = heads;
  p.per_kv_head = per_kv;
  p.causal = causal;
  p.band = 7;
  Rng rng(seed);
  p.block_indptr.push_back(0);
  for (int h = 0; h < heads; ++h)
    for (int64_t qb = 0; qb < p.num_q_blocks(); ++qb) {
      const int64_t last = std::min((qb + 1) * bq, lq) - 1 + (lk - lq);
      const int64_t nvis = causal ? std::min(p.num_k_blocks(), last / bk + 1) : p.num_k_blocks();
      for (int64_t kb = 0; kb < nvis; ++kb)
        if (rng.uniform() < 0.35) p.block_indices.push_back(int32_t(kb));
      p.block_indptr.push_back(int32_t(p.block_indices.size()));
    }
  p.column_indptr.push_back(0);
  for (int h = 0; h < heads; ++h) {
    for (int64_t j = 0; j < lk; ++j)
      if (rng.uniform() < 0.08) p.columns.push_back(int32_t(j));
    p.column_indptr.push_back(int32_t(p.columns.size()));
  }
  p.validate();
  return p;
}

struct Brute {
  std::vector<std::vector<double>> recall;  // [head][row index]
  std::vector<double> out;                   // [h][row][d]
};

Brute brute_force(const Tensor& q, const Tensor& k, const Tensor& v, const SparsePattern& p,
                  bool causal, const std::vector<int64_t>& rows) {
  const int64_t hq = q.size(0), lq = q.size(1), d = q.size(2), hk = k.size(0), lk = k.size(1);
  // The library's default scale is the f32 value 1/sqrt(D) (AttentionOptions::scale is a float).
  const double scale = double(1.0f / std::sqrt(float(d)));
  Brute b;
  b.recall.assign(size_t(hq), {});
  for (int64_t h = 0; h < hq; ++h) {
    const int64_t g = h / (hq / hk);
    for (int64_t i : rows) {
      std::vector<double> w;
      double mx = -1e300;
      const int64_t lim = causal ? i + (lk - lq) + 1 : lk;
      for (int64_t j = 0; j < lim; ++j) {
        double s = 0;
        for (int64_t e = 0; e < d; ++e) s += double(q.view().get(h, i, e)) * double(k.view().get(g, j, e));
        w.push_back(scale * s);
        mx = std::max(mx, scale * s);
      }
      double z = 0, kept = 0;
      for (int64_t j = 0; j < lim; ++j) {
        w[size_t(j)] = std::exp(w[size_t(j)] - mx);
        z += w[size_t(j)];
        if (p.contains(p.per_kv_head ? g : h, i, j)) kept += w[size_t(j)];
      }
      b.recall[size_t(h)].push_back(kept / z);
      for (int64_t e = 0; e < d; ++e) {
        double o = 0;
        for (int64_t j = 0; j < lim; ++j) o += w[size_t(j)] / z * double(v.view().get(g, j, e));
        b.out.push_back(o);
      }
    }
  }
  return b;
}

double p01(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x[size_t(std::floor(0.01 * double(x.size() - 1)))];
}

void expect_matches(const PatternMetrics& m, const Brute& b) {
  std::vector<double> all;
  double mn = 1;
  ASSERT_EQ(m.per_head.size(), b.recall.size());
  for (size_t h = 0; h < b.recall.size(); ++h) {
    const auto& r = b.recall[h];
    double sum = 0;
    for (double x : r) sum += x;
    EXPECT_NEAR(m.per_head[h].mean, sum / double(r.size()), 1e-12) << "head " << h;
    EXPECT_NEAR(m.per_head[h].min, *std::min_element(r.begin(), r.end()), 1e-12) << "head " << h;
    EXPECT_NEAR(m.per_head[h].p01, p01(r), 1e-12) << "head " << h;
    all.insert(all.end(), r.begin(), r.end());
    mn = std::min(mn, *std::min_element(r.begin(), r.end()));
  }
  double sum = 0;
  for (double x : all) sum += x;
  EXPECT_NEAR(m.recall_mean, sum / double(all.size()), 1e-12);
  EXPECT_NEAR(m.recall_min, mn, 1e-12);
  EXPECT_NEAR(m.recall_p01, p01(all), 1e-12);
  EXPECT_LT(m.recall_min, 0.999);  // the random patterns really drop mass
}

void run_case(int64_t lq, int64_t lk, bool causal, bool per_kv, int64_t stride, int64_t d) {
  const int64_t hq = 4, hk = 2;
  const Tensor q = random_tensor(hq, lq, d, 1, 1.5), k = random_tensor(hk, lk, d, 2, 1.5),
               v = random_tensor(hk, lk, d, 3, 1.0);
  const SparsePattern p = random_pattern(int(per_kv ? hk : hq), lq, lk, 16, 8, causal, per_kv, 4);
  AttentionOptions opts;
  opts.causal = causal;
  std::vector<int64_t> rows;
  for (int64_t i = lq - 1; i >= 0; i -= stride) rows.insert(rows.begin(), i);
  EXPECT_EQ(strided_rows(lq, stride), rows);
  const Brute b = brute_force(q, k, v, p, causal, rows);
  ExactRows ex;
  const TensorView vv = v.view();
  const auto ms = pattern_recall(q, k, {&p}, opts, stride, &vv, &ex);
  ASSERT_EQ(ms.size(), 1u);
  expect_matches(ms[0], b);
  EXPECT_DOUBLE_EQ(ms[0].block_density, p.block_density());
  EXPECT_DOUBLE_EQ(ms[0].token_density, p.token_density());
  ASSERT_EQ(ex.rows, rows);
  ASSERT_EQ(ex.out.size(), b.out.size());
  for (size_t t = 0; t < b.out.size(); ++t) ASSERT_NEAR(ex.out[t], b.out[t], 1e-12) << t;
  // the single-pattern overload agrees
  const PatternMetrics single = pattern_recall(q, k, p, opts, stride);
  EXPECT_EQ(single.recall_mean, ms[0].recall_mean);
}

}  // namespace

TEST(Metrics, RecallMatchesBruteForceCausalPerQueryHead) { run_case(150, 150, true, false, 1, 24); }
TEST(Metrics, RecallMatchesBruteForcePerKvHead) { run_case(131, 131, true, true, 1, 16); }
TEST(Metrics, RecallMatchesBruteForceNonCausal) { run_case(77, 77, false, false, 1, 13); }
TEST(Metrics, RecallMatchesBruteForceChunkAgainstLongerCache) { run_case(40, 121, true, false, 1, 8); }
TEST(Metrics, RowStrideEvaluatesTheDocumentedRows) { run_case(150, 150, true, true, 7, 16); }

TEST(Metrics, DensePatternHasFullRecallAndMultiplePatternsShareOnePass) {
  const Tensor q = random_tensor(2, 100, 16, 5, 2.0), k = random_tensor(1, 100, 16, 6, 2.0);
  const SparsePattern dense = SparsePattern::dense(2, 100, 100, 16, 16, true);
  const SparsePattern rnd = random_pattern(2, 100, 100, 16, 16, true, false, 9);
  const auto both = pattern_recall(q, k, {&dense, &rnd}, {}, 1);
  EXPECT_NEAR(both[0].recall_mean, 1.0, 1e-12);
  EXPECT_NEAR(both[0].recall_min, 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(both[0].block_density, 1.0);
  const PatternMetrics alone = pattern_recall(q, k, rnd, {}, 1);
  EXPECT_EQ(both[1].recall_mean, alone.recall_mean);
  EXPECT_EQ(both[1].recall_min, alone.recall_min);
}

TEST(Metrics, MismatchedPatternIsRejected) {
  const Tensor q = random_tensor(2, 64, 8, 1, 1), k = random_tensor(2, 64, 8, 2, 1);
  const SparsePattern wrong_len = SparsePattern::dense(2, 32, 32, 16, 16, true);
  const SparsePattern wrong_heads = SparsePattern::dense(3, 64, 64, 16, 16, true);
  const SparsePattern non_causal = SparsePattern::dense(2, 64, 64, 16, 16, false);
  EXPECT_THROW(pattern_recall(q, k, wrong_len, {}), Error);
  EXPECT_THROW(pattern_recall(q, k, wrong_heads, {}), Error);
  EXPECT_THROW(pattern_recall(q, k, non_causal, {}), Error);
  EXPECT_THROW(pattern_recall(q, k, SparsePattern::dense(2, 64, 64, 16, 16, true), {}, 0), Error);
}

TEST(Metrics, OutputErrorClosedForms) {
  Tensor e(DType::kF32, {1, 2, 2}), a(DType::kBF16, {1, 2, 2});
  const float ev[] = {1, 2, -3, 0.5};
  for (int t = 0; t < 4; ++t) e.data_as<float>()[t] = ev[t];
  auto fill = [&](float f) {
    for (int t = 0; t < 4; ++t) a.view().set(f * ev[t], 0, t / 2, t % 2);
  };
  PatternMetrics m;
  fill(1);
  output_error(a, e, m);
  EXPECT_DOUBLE_EQ(m.rel_error, 0.0);
  EXPECT_DOUBLE_EQ(m.cosine, 1.0);
  fill(2);
  output_error(a, e, m);
  EXPECT_DOUBLE_EQ(m.rel_error, 1.0);
  EXPECT_DOUBLE_EQ(m.cosine, 1.0);
  fill(-1);
  output_error(a, e, m);
  EXPECT_DOUBLE_EQ(m.rel_error, 2.0);
  EXPECT_DOUBLE_EQ(m.cosine, -1.0);
  // orthogonal: e = (1, 0, 0, 0), a = (0, 1, 0, 0)
  for (int t = 0; t < 4; ++t) {
    e.data_as<float>()[t] = t == 0;
    a.view().set(t == 1, 0, t / 2, t % 2);
  }
  output_error(a, e, m);
  EXPECT_DOUBLE_EQ(m.rel_error, std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(m.cosine, 0.0);
  Tensor bad(DType::kF32, {1, 2, 3});
  EXPECT_THROW(output_error(bad, e, m), Error);
}

TEST(Metrics, OutputErrorOnExactRows) {
  // approx differs from exact only on row 1 of head 0; rows evaluated: {1, 3}
  Tensor approx(DType::kF32, {2, 4, 2});
  ExactRows ex;
  ex.rows = {1, 3};
  ex.out = {1, 0, 0, 1, 2, 2, 0, -1};  // [h][r][d]
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t d = 0; d < 2; ++d)
        approx.view().set(float(ex.out[size_t((h * 2 + r) * 2 + d)]), h, ex.rows[size_t(r)], d);
  approx.view().set(5.0f, 0, 0, 0);  // row 0 is not evaluated: no effect
  approx.view().set(0.0f, 0, 1, 0);  // evaluated: diff (1, 0)
  PatternMetrics m;
  output_error(approx, ex, m);
  const double e2 = 1 + 1 + 4 + 4 + 1;
  EXPECT_NEAR(m.rel_error, std::sqrt(1.0 / e2), 1e-15);
  EXPECT_NEAR(m.cosine, (e2 - 1) / std::sqrt(e2 * (e2 - 1)), 1e-15);
  ex.out.pop_back();
  EXPECT_THROW(output_error(approx, ex, m), Error);
}
