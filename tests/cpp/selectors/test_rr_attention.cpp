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
  // Why outliers and moments are the defaults: with plain stride means a single-token stripe is
  // diluted by 1/S and the mixed head (band + stripes + needle) loses stripe mass.
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
  expect_rejected("rr", "bogus", "1");
  auto s = make("rr", {"stride=32"});
  s->set("block_q", "16");  // stride no longer divides block_q: caught when selecting
  const Workload w = make_workload(PlantedConfig{});
  EXPECT_THROW(run(*s, w), sieve::Error);
}

TEST(RRSelector, SettingsRoundTrip) {
  auto s = make("rr", {"tau=0.7", "stride=8", "offset=head", "key_agg=sample", "outliers=2",
                       "moments=false"});
  const auto m = s->settings();
  EXPECT_EQ(m.at("tau"), "0.7");
  EXPECT_EQ(m.at("stride"), "8");
  EXPECT_EQ(m.at("offset"), "head");
  EXPECT_EQ(m.at("key_agg"), "sample");
  EXPECT_EQ(m.at("outliers"), "2");
  EXPECT_EQ(m.at("moments"), "false");
  EXPECT_EQ(m.at("block_q"), "128");
  auto t = make("rr");
  for (const auto& [k, v] : m) t->set(k, v);
  EXPECT_EQ(t->settings(), m);
}

}  // namespace
}  // namespace sieve::attention::selector_test
