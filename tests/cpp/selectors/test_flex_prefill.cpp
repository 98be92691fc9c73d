// FlexPrefill selector: properties, planted recall, gamma monotonicity, the dense fallback rule.
#include "common.h"

namespace sieve::attention::selector_test {
namespace {

// min_budget 1024 (the RULER setting) is half of a 2048-token input; tests use a budget of the
// same order as their lengths.
const std::vector<std::string> kRun = {"dense_below=0", "min_budget=256"};

TEST(FlexPrefillSelector, ValidPatternsOnOddShapesAndGqaUnion) {
  check_common("flexprefill", kRun);
  check_common("flexprefill", {"dense_below=0", "min_budget=0", "tau=10"});  // all query-aware
  check_common("flexprefill", {"dense_below=0", "min_budget=128", "tau=0"});  // none
}

TEST(FlexPrefillSelector, CoversPlantedBandStripesAndNeedle) {
  // gamma 0.98: at 0.95 the band head loses ~7 % of its band, a measured property of the method.
  check_planted("flexprefill", {"dense_below=0", "min_budget=256", "gamma=0.98"},
                {Kind::kBand, Kind::kStripes, Kind::kNeedle}, 0.8);
}

TEST(FlexPrefillSelector, GammaMovesDensityMonotonically) {
  check_monotone("flexprefill", kRun, "gamma", {"0.3", "0.6", "0.9", "0.99"});
  const Workload& w = shared_workload(1024);
  // gamma = 1 needs every token: every causal block.
  EXPECT_DOUBLE_EQ(run(*make("flexprefill", {"dense_below=0", "gamma=1"}), w).block_density(),
                   1.0);
}

TEST(FlexPrefillSelector, VerticalSlashHeadsShareColumnsAndDiagonals) {
  // tau = 0: no head is query-aware, so every query block keeps the same vertical blocks and
  // the same diagonal offsets (slash s -> key block qb - s).
  const Workload& w = shared_workload(1024);
  const SparsePattern p = run(*make("flexprefill", {"dense_below=0", "min_budget=128",
                                                    "tau=0"}), w);
  for (int64_t h = 0; h < p.num_heads; ++h) {
    const auto last = block_rows(p, p.num_q_blocks() - 1)[size_t(h)];
    for (int64_t qb = 0; qb + 1 < p.num_q_blocks(); ++qb) {
      const auto row = block_rows(p, qb)[size_t(h)];
      for (int32_t kb : row) {
        // kb is a vertical block (kept by the last row too) or a slash offset qb - kb that the
        // last row keeps as well.
        const int64_t s = qb - kb;
        const int64_t last_qb = p.num_q_blocks() - 1;
        const bool vertical = std::binary_search(last.begin(), last.end(), kb);
        const bool slash = std::binary_search(last.begin(), last.end(), int32_t(last_qb - s));
        EXPECT_TRUE(vertical || slash) << "head " << h << " q-block " << qb << " k-block " << kb;
      }
    }
  }
}

TEST(FlexPrefillSelector, DefaultDenseFallbackFollowsTheReference) {
  // q_len <= max(2 * block, min_budget) = 1024 runs dense.
  EXPECT_EQ(make("flexprefill")->settings().at("dense_below"), "1025");
  check_dense_fallback("flexprefill", {"min_budget=128"});
}

TEST(FlexPrefillSelector, RejectsBadSettings) {
  expect_rejected("flexprefill", "gamma", "0");
  expect_rejected("flexprefill", "gamma", "1.2");
  expect_rejected("flexprefill", "tau", "-0.1");
  expect_rejected("flexprefill", "tau", "x");
  expect_rejected("flexprefill", "min_budget", "-1");
  expect_rejected("flexprefill", "max_budget", "512");  // below min_budget 1024
  expect_rejected("flexprefill", "budget", "1");
}

}  // namespace
}  // namespace sieve::attention::selector_test
