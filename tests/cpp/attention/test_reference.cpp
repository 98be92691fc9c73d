// reference_attention against closed forms (equal scores -> mean of V, lse = s + ln n) and a
// naive softmax written out here, on tiny inputs; masks, bottom-right causality, GQA, strides.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "sieve/attention/reference.h"
#include "sieve/core/rng.h"
#include "sieve/core/tensor.h"

using namespace sieve;
using namespace sieve::attention;

namespace {

Tensor random_tensor(int64_t h, int64_t l, int64_t d, uint64_t seed) {
  Tensor t(DType::kF32, {h, l, d});
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = float(rng.normal());
  return t;
}

// Naive attention: exp without max subtraction, explicit sums; only for tiny, moderate inputs.
std::vector<double> naive(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                          double scale, const KeyMask& mask = {}) {
  const int64_t hq = q.size(0), lq = q.size(1), d = q.size(2), hk = k.size(0), lk = k.size(1);
  std::vector<double> out(size_t(hq * lq * d), 0.0);
  for (int64_t h = 0; h < hq; ++h) {
    const int64_t g = h / (hq / hk);
    for (int64_t i = 0; i < lq; ++i) {
      std::vector<double> w(size_t(lk), 0.0);
      double z = 0;
      for (int64_t j = 0; j < lk; ++j) {
        if (causal && j > i + lk - lq) continue;
        if (mask && !mask(h, i, j)) continue;
        double s = 0;
        for (int64_t e = 0; e < d; ++e) s += double(q.view().get(h, i, e)) * k.view().get(g, j, e);
        w[j] = std::exp(scale * s);
        z += w[j];
      }
      for (int64_t j = 0; j < lk; ++j)
        for (int64_t e = 0; e < d; ++e)
          out[size_t((h * lq + i) * d + e)] += z > 0 ? w[j] / z * v.view().get(g, j, e) : 0.0;
    }
  }
  return out;
}

void expect_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol) << "element " << i;
}

}  // namespace

TEST(Reference, EqualScoresGiveMeanOfVisibleValues) {
  // Every key equal: scores are equal, so row i averages v[0..i] and lse = s + ln(i + 1).
  const int64_t L = 9, D = 4;
  Tensor q = random_tensor(1, L, D, 1), k(DType::kF32, {1, L, D}), v = random_tensor(1, L, D, 2);
  for (int64_t j = 0; j < L; ++j)
    for (int64_t e = 0; e < D; ++e) k.view().set(30.0f * float(e + 1), 0, j, e);  // huge scores
  const ReferenceResult r = reference_attention(q, k, v, AttentionOptions{true, 0.5f});
  for (int64_t i = 0; i < L; ++i) {
    double s = 0;
    for (int64_t e = 0; e < D; ++e) s += 0.5 * q.view().get(0, i, e) * 30.0 * double(e + 1);
    EXPECT_NEAR(r.lse[size_t(i)], s + std::log(double(i + 1)), 1e-9 * (1 + std::fabs(s)));
    for (int64_t e = 0; e < D; ++e) {
      double mean = 0;
      for (int64_t j = 0; j <= i; ++j) mean += v.view().get(0, j, e);
      EXPECT_NEAR(r.out[size_t(i * D + e)], mean / double(i + 1), 1e-12);
    }
  }
}

TEST(Reference, MatchesNaiveSoftmaxCausalNonCausalGqa) {
  const Tensor q = random_tensor(4, 6, 5, 3), k = random_tensor(2, 6, 5, 4),
               v = random_tensor(2, 6, 5, 5);
  for (bool causal : {true, false}) {
    const ReferenceResult r = reference_attention(q, k, v, AttentionOptions{causal, 0.0f});
    expect_close(r.out, naive(q, k, v, causal, 1.0 / std::sqrt(5.0f)), 1e-7);
  }
}

TEST(Reference, BottomRightCausalAlignment) {
  // 2 queries over 5 keys: query 0 sits at position 3 and sees keys 0..3; query 1 sees all.
  const Tensor q = random_tensor(1, 2, 3, 6), k = random_tensor(1, 5, 3, 7),
               v = random_tensor(1, 5, 3, 8);
  const ReferenceResult r = reference_attention(q, k, v, AttentionOptions{true, 0.7f});
  const KeyMask upto3 = [](int64_t, int64_t i, int64_t j) { return i == 1 || j <= 3; };
  expect_close(r.out, naive(q, k, v, false, double(0.7f), upto3), 1e-12);
}

TEST(Reference, MaskAndEmptyRows) {
  const Tensor q = random_tensor(2, 5, 4, 9), k = random_tensor(1, 5, 4, 10),
               v = random_tensor(1, 5, 4, 11);
  // head 1, row 2 keeps nothing; other rows keep even keys plus the diagonal
  const KeyMask mask = [](int64_t h, int64_t i, int64_t j) {
    if (h == 1 && i == 2) return false;
    return j % 2 == 0 || j == i;
  };
  const ReferenceResult r = reference_attention(q, k, v, AttentionOptions{true, 0.0f}, mask);
  expect_close(r.out, naive(q, k, v, true, 0.5, mask), 1e-12);
  EXPECT_EQ(r.lse[size_t(1 * 5 + 2)], -std::numeric_limits<double>::infinity());
  for (int64_t e = 0; e < 4; ++e) EXPECT_EQ(r.out[size_t((1 * 5 + 2) * 4 + e)], 0.0);
}

TEST(Reference, StridedViewsEqualContiguous) {
  const Tensor q = random_tensor(2, 7, 3, 12), k = random_tensor(1, 7, 3, 13),
               v = random_tensor(1, 7, 3, 14);
  // the same q stored with padding between rows and heads
  Tensor big(DType::kF32, {2, 7, 8});
  TensorView qs = big.view();
  qs.shape = {2, 7, 3, 0};
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < 7; ++i)
      for (int64_t e = 0; e < 3; ++e) qs.set(q.view().get(h, i, e), h, i, e);
  const AttentionOptions o{true, 0.0f};
  expect_close(reference_attention(qs, k, v, o).out, reference_attention(q, k, v, o).out, 0.0);
}

TEST(Reference, MaskFromPatternMapsHeads) {
  // per KV head pattern shared by the 2 query heads of each group
  SparsePattern p = SparsePattern::dense(2, 4, 4, 2, 2, true, /*per_kv_head=*/true);
  p.block_indptr = {0, 1, 2, 3, 5};
  p.block_indices = {0, 1, 0, 0, 1};  // kv head 0: qb0 {0}, qb1 {1}; kv head 1: {0}, {0, 1}
  const KeyMask m = mask_from_pattern(p, 4, 2);
  EXPECT_TRUE(m(1, 3, 3));   // q head 1 -> kv head 0, qb1 keeps block 1
  EXPECT_FALSE(m(1, 3, 0));
  EXPECT_TRUE(m(2, 3, 0));   // q head 2 -> kv head 1, qb1 keeps blocks 0, 1
  EXPECT_TRUE(m(3, 3, 2));
  EXPECT_THROW(mask_from_pattern(p, 4, 4), Error);  // pattern has 2 heads, 4 KV heads given
  p.per_kv_head = false;
  EXPECT_THROW(mask_from_pattern(p, 4, 2), Error);  // 2 heads but 4 query heads
}
