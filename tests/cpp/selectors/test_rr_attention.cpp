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

// query_stride: one sampled query per query_stride rows. 8 heads with the same tensors, offset
// = head (head h samples rows h, h + Sq, ... of each block). Every query row attends to itself
// (q_i = g k_i, self logit ~8 g against N(0, g^2) elsewhere), except rows 21 and 69 of each query block from the 6th on,
// which attend to the keys of blocks 2 and 4 (two clusters of 128 near-equal keys, so that
// their stride means carry the match). At query_stride 16 head 5 samples rows 5, 21, ..., 117
// and must keep both clusters; at 64 it samples rows 5 and 69 only and must keep block 4 but
// not block 2; every other head samples neither planted row and keeps neither.
TEST(RRSelector, QueryStrideSetsWhichRowsAreSampled) {
  constexpr int64_t H = 8, L = 2048, D = 64, bq = 128;
  constexpr double g = 3.0;
  Rng rng(11);
  Tensor q(DType::kF32, {H, L, D}), k(DType::kF32, {H, L, D});
  std::vector<float> kk(static_cast<size_t>(L * D)), qq(static_cast<size_t>(L * D));
  std::vector<float> ca(static_cast<size_t>(D)), cb(static_cast<size_t>(D));
  // random directions of norm sqrt(D): self and planted logits exactly 8 g
  const auto direction = [&](float* v) {
    double n2 = 0;
    for (int64_t d = 0; d < D; ++d) {
      v[d] = float(rng.normal());
      n2 += double(v[d]) * v[d];
    }
    for (int64_t d = 0; d < D; ++d) v[d] = float(v[d] * std::sqrt(double(D) / n2));
  };
  direction(ca.data());
  direction(cb.data());
  for (int64_t j = 0; j < L; ++j) {
    float* kr = &kk[size_t(j * D)];
    direction(kr);
    const int64_t blk = j / bq;
    if (blk == 2 || blk == 4)
      for (int64_t d = 0; d < D; ++d) kr[d] = (blk == 2 ? ca : cb)[size_t(d)] + 0.05f * kr[d];
  }
  for (int64_t i = 0; i < L; ++i) {
    const int64_t r = i % bq;
    const bool planted = i / bq >= 6 && (r == 21 || r == 69);
    for (int64_t d = 0; d < D; ++d)
      qq[size_t(i * D + d)] = float(g) * (!planted ? kk[size_t(i * D + d)]
                                          : r == 21 ? ca[size_t(d)]
                                                    : cb[size_t(d)]);
  }
  for (int64_t h = 0; h < H; ++h) {
    std::copy(qq.begin(), qq.end(), q.data_as<float>() + h * L * D);
    std::copy(kk.begin(), kk.end(), k.data_as<float>() + h * L * D);
  }
  const auto kept = [&](const SparsePattern& p, int64_t h, int64_t kb) {
    int64_t n = 0;  // query blocks 6.. that keep key block kb
    for (int64_t qb = 6; qb < L / bq; ++qb) n += p.contains(h, qb * bq, kb * bq) ? 1 : 0;
    return n;
  };
  const std::vector<std::string> base = {"dense_below=0", "offset=head", "outliers=0"};
  auto with = [&](const std::string& qs) {
    auto v = base;
    v.push_back("query_stride=" + qs);
    return make("rr", v)->select(q, k, {});
  };
  const SparsePattern s16 = with("16"), s64 = with("64");
  EXPECT_EQ(kept(s16, 5, 2), 10);
  EXPECT_EQ(kept(s16, 5, 4), 10);
  EXPECT_EQ(kept(s64, 5, 2), 0);
  EXPECT_EQ(kept(s64, 5, 4), 10);
  for (int64_t h = 0; h < H; ++h) {
    if (h == 5) continue;
    SCOPED_TRACE("head " + std::to_string(h));
    EXPECT_EQ(kept(s16, h, 2) + kept(s16, h, 4) + kept(s64, h, 2) + kept(s64, h, 4), 0);
  }
  // 0 is the key stride; an explicit equal value is the same selector
  const SparsePattern s0 = with("0");
  EXPECT_EQ(s0.block_indptr, s16.block_indptr);
  EXPECT_EQ(s0.block_indices, s16.block_indices);
}

TEST(RRSelector, QueryStrideVariantsAreValidAndQueryIndependent) {
  check_common("rr", {"dense_below=0", "query_stride=32", "outliers=1", "tau=0.98"});
  check_common("rr", {"dense_below=0", "query_stride=8"});
  check_query_independence("rr", {"dense_below=0", "tau=0.8", "query_stride=32"});
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
  expect_rejected("rr", "query_stride", "7");  // does not divide block 128
  expect_rejected("rr", "query_stride", "-1");
  expect_rejected("rr", "query_stride", "512");
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
                       "moments=false", "near=640", "variance=scalar",
                       "query_stride=32"});
  const auto m = s->settings();
  EXPECT_EQ(m.at("tau"), "0.7");
  EXPECT_EQ(m.at("stride"), "8");
  EXPECT_EQ(m.at("offset"), "head");
  EXPECT_EQ(m.at("key_agg"), "sample");
  EXPECT_EQ(m.at("outliers"), "2");
  EXPECT_EQ(m.at("moments"), "false");
  EXPECT_EQ(m.at("near"), "640");
  EXPECT_EQ(m.at("variance"), "scalar");
  EXPECT_EQ(m.at("query_stride"), "32");
  EXPECT_EQ(m.at("block_q"), "128");
  auto t = make("rr");
  for (const auto& [k, v] : m) t->set(k, v);
  EXPECT_EQ(t->settings(), m);
}

}  // namespace
}  // namespace sieve::attention::selector_test
