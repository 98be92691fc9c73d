// SampleAttention selector: properties, planted recall, the CRA rule checked against an f64
// recall computed here.
#include "common.h"

namespace sieve::attention::selector_test {
namespace {

const std::vector<std::string> kRun = {"dense_below=0"};

TEST(SampleAttentionSelector, ValidPatternsOnOddShapesAndGqaUnion) {
  check_common("sample", kRun);
  check_common("sample", {"dense_below=0", "chunk=100", "sample_ratio=0.3", "window_ratio=0"});
}

TEST(SampleAttentionSelector, CoversPlantedBandStripesAndNeedle) {
  check_planted("sample", kRun, {Kind::kBand, Kind::kStripes, Kind::kNeedle, Kind::kMixed},
                0.75);
}

TEST(SampleAttentionSelector, WindowIsARatioOfTheLengthAndColumnsAreTokens) {
  const Workload& w = shared_workload(1024);
  const SparsePattern p = run(*make("sample", {"dense_below=0", "window_ratio=0.1"}), w);
  EXPECT_EQ(p.band, 103);  // ceil(0.1 * 1024)
  ASSERT_TRUE(p.has_columns());
  // The stripe keys of the stripes head (head 1) are kept as token columns.
  for (int64_t key : w.stripe_keys) {
    EXPECT_TRUE(std::binary_search(p.columns.begin() + p.column_indptr[1],
                                   p.columns.begin() + p.column_indptr[2], int32_t(key)))
        << "stripe key " << key;
  }
}

TEST(SampleAttentionSelector, AlphaMovesDensityMonotonically) {
  check_monotone("sample", kRun, "alpha", {"0.3", "0.6", "0.9", "0.99"});
}

// With every row sampled, CRA is the mean kept mass over all rows: the kept columns plus the
// always-kept structure (band, sink block, diagonal block) reach alpha, and without the weakest
// kept column they do not (the greedy set is minimal). Masses are the f64 softmax of this file.
void check_cra(const std::vector<std::string>& settings, double alpha) {
  PlantedConfig cfg;
  cfg.seq_len = 512;
  const Workload w = make_workload(cfg);
  const SparsePattern p = run(*make("sample", settings), w);
  const int64_t L = cfg.seq_len;
  for (int64_t h = 0; h < w.num_heads_q(); ++h) {
    double covered = 0;
    std::vector<double> column(size_t(L), 0.0);  // mass outside the always-kept structure
    for (int64_t i = 0; i < L; ++i) {
      const auto& pr = softmax_row(w, h, i);
      for (int64_t j = 0; j <= i; ++j) {
        const bool always = j < p.block_k || j / p.block_k == i / p.block_q || j > i - p.band;
        (always ? covered : column[size_t(j)]) += pr[size_t(j)];
      }
    }
    double kept = covered, weakest = 1e300;
    for (int32_t t = p.column_indptr[h]; t < p.column_indptr[h + 1]; ++t) {
      kept += column[size_t(p.columns[size_t(t)])];
      weakest = std::min(weakest, column[size_t(p.columns[size_t(t)])]);
    }
    EXPECT_GE(kept / double(L), alpha - 1e-4) << "head " << h;
    if (p.column_indptr[h + 1] > p.column_indptr[h]) {
      EXPECT_LT((kept - weakest) / double(L), alpha + 1e-4) << "head " << h << " not minimal";
    }
  }
}

TEST(SampleAttentionSelector, CraReachesAlphaWithTheMinimalColumnSet) {
  check_cra({"dense_below=0", "sample_ratio=1", "alpha=0.9", "window_ratio=0.05"}, 0.9);
}

// Above alpha_ref_length keys the threshold is 1 - (1 - alpha) (Lk / ref)^exponent: at 512 keys
// with ref 128 and exponent 0.5 that is 1 - 0.1 * 2 = 0.8 (below ref, or exponent 0: alpha).
TEST(SampleAttentionSelector, CraReachesTheLengthScaledAlpha) {
  SampleAttentionConfig c;
  c.alpha = 0.9;
  c.alpha_ref_length = 128;
  c.alpha_length_exponent = 0.5;
  EXPECT_DOUBLE_EQ(c.alpha_at(128), 0.9);
  EXPECT_DOUBLE_EQ(c.alpha_at(64), 0.9);
  EXPECT_NEAR(c.alpha_at(512), 0.8, 1e-15);
  EXPECT_NEAR(SampleAttentionConfig{}.alpha_at(131072), 1 - 0.013 * 2, 1e-15);
  c.alpha_length_exponent = 0;
  EXPECT_DOUBLE_EQ(c.alpha_at(1 << 20), 0.9);
  check_cra({"dense_below=0", "sample_ratio=1", "alpha=0.9", "window_ratio=0.05",
             "alpha_ref_length=128", "alpha_length_exponent=0.5"},
            0.8);
}

TEST(SampleAttentionSelector, DenseFallbackBelowThreshold) { check_dense_fallback("sample"); }

TEST(SampleAttentionSelector, RejectsBadSettings) {
  expect_rejected("sample", "alpha", "0");
  expect_rejected("sample", "alpha", "1.5");
  expect_rejected("sample", "alpha", "0.9.1");
  expect_rejected("sample", "alpha_ref_length", "0");
  expect_rejected("sample", "alpha_length_exponent", "-0.5");
  expect_rejected("sample", "alpha_length_exponent", "5");
  expect_rejected("sample", "sample_ratio", "0");
  expect_rejected("sample", "window_ratio", "-0.1");
  expect_rejected("sample", "chunk", "0");
  expect_rejected("sample", "chunk", "many");
  expect_rejected("sample", "ratio", "0.1");
}

}  // namespace
}  // namespace sieve::attention::selector_test
