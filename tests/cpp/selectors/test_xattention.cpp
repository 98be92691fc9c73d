// XAttention selector: properties, planted recall, and the estimator against an independent f64
// transcription of xattn_estimate + find_blocks_chunked.
#include "common.h"

namespace sieve::attention::selector_test {
namespace {

const std::vector<std::string> kRun = {"dense_below=0"};

TEST(XAttentionSelector, ValidPatternsOnOddShapesAndGqaUnion) {
  check_common("xattn", kRun);
  check_common("xattn", {"dense_below=0", "stride=16", "tau=0.8"});
}

TEST(XAttentionSelector, CoversPlantedBandStripesAndNeedle) {
  // Pure heads; on the mixed head single-token stripes are diluted by the 1/S antidiagonal mean
  // (measured in docs/results/selectors.md), a property of the method.
  check_planted("xattn", kRun, {Kind::kBand, Kind::kStripes, Kind::kNeedle}, 0.75);
}

TEST(XAttentionSelector, TauMovesDensityMonotonically) {
  check_monotone("xattn", kRun, "tau", {"0.3", "0.6", "0.9", "0.99"});
}

TEST(XAttentionSelector, QueryIndependence) { check_query_independence("xattn", kRun); }

// f64 transcription of the reference: antidiagonal scores sum_t q[iS+S-1-t] . k[jS+t] / sqrt(D)
// / S, causal by stride (j <= i), row softmax, block sums, then per row: sink and diagonal first,
// the rest by descending score while the cumulative sum stays below tau * row total.
std::vector<std::vector<int32_t>> reference_rows(const Workload& w, int64_t h, int64_t S,
                                                 int64_t B, double tau, double* margin) {
  const int64_t L = w.cfg.seq_len, hk = h / w.group(), per = B / S;
  std::vector<std::vector<int32_t>> rows;
  *margin = 1e300;
  for (int64_t qb = 0; qb < L / B; ++qb) {
    std::vector<double> block(size_t(qb + 1), 0.0);
    for (int64_t i = qb * per; i < (qb + 1) * per; ++i) {
      std::vector<double> s(size_t(i + 1));
      double mx = -1e300;
      for (int64_t j = 0; j <= i; ++j) {
        double a = 0;
        for (int64_t t = 0; t < S; ++t)
          for (int64_t d = 0; d < kDim; ++d)
            a += double(w.qf[size_t((h * L + i * S + S - 1 - t) * kDim + d)]) *
                 double(w.kf[size_t((hk * L + j * S + t) * kDim + d)]);
        s[size_t(j)] = a / std::sqrt(double(kDim)) / double(S);
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int64_t j = 0; j <= i; ++j) block[size_t(j / per)] += s[size_t(j)] / sum;
    }
    double total = 0;
    for (double b : block) total += b;
    std::vector<int32_t> sel = {0};
    double cum = block[0];
    if (qb > 0) {
      sel.push_back(int32_t(qb));
      cum += block[size_t(qb)];
    }
    std::vector<int32_t> order;
    for (int64_t kb = 1; kb < qb; ++kb) order.push_back(int32_t(kb));
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return block[size_t(a)] > block[size_t(b)];
    });
    for (int32_t kb : order) {
      *margin = std::min(*margin, std::abs(cum - tau * total) / total);
      if (cum >= tau * total) break;
      sel.push_back(kb);
      cum += block[size_t(kb)];
    }
    std::sort(sel.begin(), sel.end());
    rows.push_back(sel);
  }
  return rows;
}

TEST(XAttentionSelector, MatchesIndependentTranscriptionOfTheReference) {
  PlantedConfig cfg;
  cfg.seq_len = 512;
  cfg.kinds = {Kind::kMixed, Kind::kBand};
  cfg.num_heads_kv = 1;
  const Workload w = make_workload(cfg);
  for (const auto& [S, B, tau] : {std::tuple<int64_t, int64_t, double>{8, 64, 0.9},
                                  std::tuple<int64_t, int64_t, double>{4, 32, 0.7}}) {
    const SparsePattern p = run(*make("xattn", {"dense_below=0", "stride=" + std::to_string(S),
                                                "block_q=" + std::to_string(B),
                                                "block_k=" + std::to_string(B),
                                                "tau=" + std::to_string(tau)}),
                                w);
    for (int64_t h = 0; h < 2; ++h) {
      double margin = 0;
      const auto ref = reference_rows(w, h, S, B, tau, &margin);
      ASSERT_GT(margin, 1e-4) << "reference too close to the threshold to compare in f32";
      for (int64_t qb = 0; qb < p.num_q_blocks(); ++qb)
        EXPECT_EQ(block_rows(p, qb)[size_t(h)], ref[size_t(qb)]) << "S " << S << " head " << h
                                                                  << " q-block " << qb;
    }
  }
}

TEST(XAttentionSelector, DenseFallbackBelowThreshold) { check_dense_fallback("xattn"); }

TEST(XAttentionSelector, RejectsBadSettings) {
  expect_rejected("xattn", "tau", "0");
  expect_rejected("xattn", "tau", "1.01");
  expect_rejected("xattn", "tau", "high");
  expect_rejected("xattn", "stride", "3");
  expect_rejected("xattn", "stride", "-8");
  expect_rejected("xattn", "window", "8");
}

}  // namespace
}  // namespace sieve::attention::selector_test
