// stride_block_scores (the estimator shared by xattn, rr and unisparse) against block scores
// computed here in f64: with one product over the full width, and with rr's split products
// (representatives after the first of each unit are zero beyond rest_dim, so their products run
// over rest_dim columns and are scattered back into the rows).
#include "../../../src/attention/selectors/estimation.h"

#include "sieve/core/rng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <mutex>
#include <vector>

namespace sieve::attention {
namespace {

namespace est = estimation;

TEST(StrideBlockScores, SplitAndFullProductsMatchF64) {
  const int64_t L = 256, sq = 4, sk = 4, reps = 3, dim = 16, rest = 8;
  const int block = 32;
  const int64_t nqr = L / sq, units = L / sk;
  const float alpha = 0.7f;
  Rng rng(11);
  std::vector<float> q(size_t(nqr * dim)), k(size_t(units * reps * dim));
  for (auto& x : q) x = float(rng.normal());
  for (int64_t e = 0; e < units * reps; ++e)
    for (int64_t d = 0; d < dim; ++d)  // slots 1..reps-1 have no values beyond rest
      k[size_t(e * dim + d)] = (e % reps == 0 || d < rest) ? float(rng.normal()) : 0.0f;
  const est::BlockGeometry geo(AttentionShape{1, 1, L, L, dim}, block, block, true);
  const auto visible = [&](int64_t r) { return r + 1; };  // causal at unit resolution

  // f64 reference: per representative a softmax over its visible entries, summed per key block
  std::map<int64_t, std::vector<double>> want;
  const int64_t per_block = (block / sk) * reps;
  for (int64_t qb = 0; qb < geo.num_q_blocks; ++qb) {
    std::vector<double> b(static_cast<size_t>(geo.visible_k_blocks(qb)), 0.0);
    for (int64_t r = qb * block / sq; r < (qb + 1) * block / sq; ++r) {
      const int64_t n = visible(r) * reps;
      std::vector<double> s(static_cast<size_t>(n));
      double mx = -INFINITY, sum = 0;
      for (int64_t e = 0; e < n; ++e) {
        double dot = 0;
        for (int64_t d = 0; d < dim; ++d) dot += double(q[size_t(r * dim + d)]) * k[size_t(e * dim + d)];
        s[size_t(e)] = alpha * dot;
        mx = std::max(mx, s[size_t(e)]);
      }
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int64_t e = 0; e < n; ++e) b[size_t(e / per_block)] += s[size_t(e)] / sum;
    }
    want[qb] = b;
  }

  for (const int64_t rest_dim : {int64_t(0), rest}) {
    std::map<int64_t, std::vector<float>> got;
    std::mutex mu;
    est::stride_block_scores(
        geo, q.data(), nqr, sq, k.data(), units, sk, reps, dim, alpha, visible,
        [](int64_t, float*, int64_t) {},
        [&](int64_t qb, const float* s, int64_t nvis) {
          std::lock_guard<std::mutex> lock(mu);
          got[qb].assign(s, s + nvis);
        },
        rest_dim);
    ASSERT_EQ(got.size(), want.size()) << "rest_dim " << rest_dim;
    for (const auto& [qb, w] : want) {
      ASSERT_EQ(got[qb].size(), w.size()) << "rest_dim " << rest_dim << " qb " << qb;
      for (size_t kb = 0; kb < w.size(); ++kb)
        EXPECT_NEAR(got[qb][kb], w[kb], 1e-4 * (1.0 + w[kb]))
            << "rest_dim " << rest_dim << " qb " << qb << " kb " << kb;
    }
  }
}

}  // namespace
}  // namespace sieve::attention
