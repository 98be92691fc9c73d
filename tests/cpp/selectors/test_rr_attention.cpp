// RRAttention selector: properties, planted recall, Top-tau monotonicity, query independence.
#include "common.h"

namespace sieve::attention::selector_test {
namespace {

const std::vector<std::string> kRun = {"dense_below=0"};

TEST(RRSelector, ValidPatternsOnOddShapesAndGqaUnion) { check_common("rr", kRun); }

TEST(RRSelector, CoversPlantedBandStripesAndNeedle) {
  check_planted("rr", kRun, {Kind::kBand, Kind::kStripes, Kind::kNeedle, Kind::kMixed}, 0.75);
}

TEST(RRSelector, PlainMeanAggregationMissesSingleTokenStripes) {
  // Why plain stride means are not enough (the defaults add the moment column; outlier keys are
  // an option): a single-token stripe is diluted by 1/S and the mixed head (band + stripes +
  // needle) loses stripe mass.
  const Workload& w = shared_workload(2048);
  const SparsePattern plain =
      run(*make("rr", {"dense_below=0", "outliers=0", "moments=false"}), w);
  EXPECT_LT(recall(w, plain).planted[3], 0.95);
}

TEST(RRSelector, TauMovesDensityMonotonically) {
  check_monotone("rr", kRun, "tau", {"0.3", "0.6", "0.9", "0.99", "1"});
  const Workload& w = shared_workload(1024);
  EXPECT_DOUBLE_EQ(run(*make("rr", {"dense_below=0", "tau=1"}), w).block_density(), 1.0);
}

TEST(RRSelector, StrideAndAggregationVariantsAreValid) {
  check_common("rr", {"dense_below=0", "offset=head", "key_agg=sample", "stride=8"});
  check_common("rr", {"dense_below=0", "outliers=3", "moments=false", "stride=32"});
}

TEST(RRSelector, QueryIndependence) {
  // Each block's estimate reads only the round-robin samples inside that block.
  check_query_independence("rr", {"dense_below=0", "tau=0.8"});
}

TEST(RRSelector, NearFieldScoresSlashLinesExactly) {
  constexpr double band_logit = 8;
  // One head whose query i attends to key i - 600 only (a one-token slash line 4-5 blocks off the
  // diagonal): q_i = b c_{i-600}, k_j = b c_j with random unit codes c, so the slash logit is 10
  // and every other logit ~N(0, 1.25^2). A stride mean dilutes the slash key 16-fold and it is an
  // outlier of its stride only by chance; near=1024 scores the 1024 keys before each sampled query
  // exactly and must keep the line. A band of logit 8 (width ~64) competes for the mass. Recall = kept slash-pair mass / slash-pair mass, f64 softmax.
  constexpr int64_t L = 2048, D = 64, o = 600, B = 16;  // dims [0, B): band, [B, D): slash code
  Rng rng(11);
  std::vector<std::vector<double>> code(size_t(2 * L), std::vector<double>(size_t(D - B)));
  for (auto& c : code)
    for (double& x : c) x = rng.normal() / std::sqrt(double(D - B));
  double freq[B / 2];
  for (double& f : freq) f = rng.uniform() * M_PI / 64.0;
  const double b = std::sqrt(80.0), a = std::sqrt(band_logit * std::sqrt(double(D)) / (B / 2));
  Tensor q(DType::kF32, {1, L, D}), k(DType::kF32, {1, L, D});
  for (int64_t i = 0; i < L; ++i) {
    float* qr = q.data_as<float>() + i * D;
    float* kr = k.data_as<float>() + i * D;
    for (int64_t m = 0; m < B / 2; ++m) {
      qr[2 * m] = kr[2 * m] = float(a * std::cos(freq[m] * double(i)));
      qr[2 * m + 1] = kr[2 * m + 1] = float(a * std::sin(freq[m] * double(i)));
    }
    const auto& c = i >= o ? code[size_t(i - o)] : code[size_t(L + i)];
    for (int64_t d = B; d < D; ++d) {
      kr[d] = float(b * code[size_t(i)][size_t(d - B)]);
      qr[d] = float(b * c[size_t(d - B)]);
    }
  }
  const auto slash_recall = [&](const SparsePattern& p) {
    double kept = 0, all = 0;
    for (int64_t i = o; i < L; i += 3) {
      std::vector<double> s(size_t(i + 1));
      double mx = -1e300;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d)
          dot += double(q.data_as<float>()[i * D + d]) * double(k.data_as<float>()[j * D + d]);
        mx = std::max(mx, s[size_t(j)] = dot / std::sqrt(double(D)));
      }
      double z = 0;
      for (double x : s) z += std::exp(x - mx);
      const double m = std::exp(s[size_t(i - o)] - mx) / z;
      all += m;
      if (p.contains(0, i, i - o)) kept += m;
    }
    return kept / all;
  };
  // Plain stride means (no outliers, no moments), so that only the near field can see the line.
  const SparsePattern with =
      make("rr", {"dense_below=0", "outliers=0", "moments=false", "near=1024"})->select(q, k, {});
  const SparsePattern without =
      make("rr", {"dense_below=0", "outliers=0", "moments=false"})->select(q, k, {});
  EXPECT_GE(slash_recall(with), 0.95);
  EXPECT_LT(slash_recall(without), 0.95);
  EXPECT_LT(slash_recall(without), slash_recall(with));
  check_common("rr", {"dense_below=0", "near=300"});
  check_query_independence("rr", {"dense_below=0", "tau=0.8", "near=512"});
}

TEST(RRSelector, ScalarVarianceEqualsDiagonalWhenKeysSpreadAlikeInEveryDimension) {
  // Keys of stride u: k_j = c_u + a_j s_u with s_u a random sign vector, so every dimension has
  // the same variance sigma_u^2 var(a) and vbar equals each var_d: the scalar correction
  // scale^2/2 |q|^2 vbar is the diagonal one. sigma_u up to 2 makes the correction worth up to
  // ~2 nats, so dropping it (moments=false) must move blocks while the scalar form must not.
  constexpr int64_t L = 2048, D = 64, S = 16;
  Rng rng(23);
  Tensor q(DType::kF32, {2, L, D}), k(DType::kF32, {1, L, D});
  for (int64_t i = 0; i < 2 * L * D; ++i) q.data_as<float>()[i] = float(rng.normal());
  for (int64_t u = 0; u < L / S; ++u) {
    std::vector<double> c(static_cast<size_t>(D)), sign(static_cast<size_t>(D));
    for (int64_t d = 0; d < D; ++d) {
      c[size_t(d)] = 0.5 * rng.normal();
      sign[size_t(d)] = rng.uniform() < 0.5 ? -1.0 : 1.0;
    }
    const double sigma = 2.0 * rng.uniform();
    for (int64_t j = u * S; j < u * S + S; ++j) {
      const double a = sigma * rng.normal();
      for (int64_t d = 0; d < D; ++d)
        k.data_as<float>()[j * D + d] = float(c[size_t(d)] + a * sign[size_t(d)]);
    }
  }
  const auto rows_differing = [&](const SparsePattern& a, const SparsePattern& b) {
    int64_t n = 0;
    for (int64_t qb = 0; qb < a.num_q_blocks(); ++qb) {
      const auto ra = block_rows(a, qb), rb = block_rows(b, qb);
      for (size_t h = 0; h < ra.size(); ++h) n += ra[h] != rb[h];
    }
    return n;
  };
  for (const char* outliers : {"outliers=0", "outliers=1"}) {
    SCOPED_TRACE(outliers);
    const std::vector<std::string> base = {"dense_below=0", "tau=0.9", outliers};
    auto with = [&](const char* extra) {
      auto v = base;
      v.emplace_back(extra);
      return make("rr", v)->select(q, k, {});
    };
    const SparsePattern diag = with("variance=diagonal"), scalar = with("variance=scalar");
    const SparsePattern none = with("moments=false");
    const int64_t rows = int64_t(diag.block_indptr.size()) - 1;  // 2 heads x 16 query blocks
    EXPECT_LE(rows_differing(diag, scalar), 1) << "of " << rows;
    EXPECT_GE(rows_differing(diag, none), rows / 4) << "the correction must matter here";
  }
}

TEST(RRSelector, DenseFallbackBelowThreshold) { check_dense_fallback("rr"); }

TEST(RRSelector, RejectsBadSettings) {
  expect_rejected("rr", "tau", "0");
  expect_rejected("rr", "tau", "1.5");
  expect_rejected("rr", "tau", "abc");
  expect_rejected("rr", "tau", "0.9x");
  expect_rejected("rr", "stride", "7");  // does not divide block 128
  expect_rejected("rr", "stride", "0");
  expect_rejected("rr", "stride", "sixteen");
  expect_rejected("rr", "offset", "diagonal");
  expect_rejected("rr", "key_agg", "max");
  expect_rejected("rr", "outliers", "16");  // must be < stride
  expect_rejected("rr", "moments", "maybe");
  expect_rejected("rr", "variance", "full");
  expect_rejected("rr", "near", "-1");
  expect_rejected("rr", "near", "far");
  expect_rejected("rr", "bogus", "1");
  auto s = make("rr", {"stride=32"});
  s->set("block_q", "16");  // stride no longer divides block_q: caught when selecting
  const Workload w = make_workload(PlantedConfig{});
  EXPECT_THROW(run(*s, w), sieve::Error);
}

TEST(RRSelector, SettingsRoundTrip) {
  auto s = make("rr", {"tau=0.7", "stride=8", "offset=head", "key_agg=sample", "outliers=2",
                       "moments=false", "near=640", "variance=scalar"});
  const auto m = s->settings();
  EXPECT_EQ(m.at("tau"), "0.7");
  EXPECT_EQ(m.at("stride"), "8");
  EXPECT_EQ(m.at("offset"), "head");
  EXPECT_EQ(m.at("key_agg"), "sample");
  EXPECT_EQ(m.at("outliers"), "2");
  EXPECT_EQ(m.at("moments"), "false");
  EXPECT_EQ(m.at("near"), "640");
  EXPECT_EQ(m.at("variance"), "scalar");
  EXPECT_EQ(m.at("block_q"), "128");
  auto t = make("rr");
  for (const auto& [k, v] : m) t->set(k, v);
  EXPECT_EQ(t->settings(), m);
}

}  // namespace
}  // namespace sieve::attention::selector_test
