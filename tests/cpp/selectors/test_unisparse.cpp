// UniSparse selector: properties, planted recall, granularity parsing.
#include "common.h"

namespace sieve::attention::selector_test {
namespace {

const std::vector<std::string> kRun = {"dense_below=0"};

TEST(UniSparseSelector, ValidPatternsOnOddShapesAndGqaUnion) {
  check_common("unisparse", kRun);
  check_common("unisparse", {"dense_below=0", "granularities=8,32:16,128", "combine=mean",
                             "moments=false"});
}

TEST(UniSparseSelector, CoversPlantedBandStripesAndNeedle) {
  check_planted("unisparse", kRun, {Kind::kBand, Kind::kStripes, Kind::kNeedle, Kind::kMixed},
                0.75);
}

TEST(UniSparseSelector, TopPMovesDensityMonotonically) {
  check_monotone("unisparse", kRun, "top_p", {"0.3", "0.6", "0.9", "0.99"});
}

TEST(UniSparseSelector, QueryIndependence) {
  // Pooled queries never straddle query blocks (c_q divides block_q).
  check_query_independence("unisparse", kRun);
}

TEST(UniSparseSelector, GranularitySettings) {
  auto s = make("unisparse", {"granularities=64:4,16,128:1"});
  EXPECT_EQ(s->settings().at("granularities"), "64:4,16,128:1");
  const auto& g = static_cast<const UniSparseSelector&>(*s).config().granularities;
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].c_q, 64);
  EXPECT_EQ(g[0].c_k, 4);
  EXPECT_EQ(g[1].c_q, 16);
  EXPECT_EQ(g[1].c_k, 16);
  EXPECT_EQ(g[2].c_k, 1);
}

// c_q above block_q pools whole query blocks: the default 128:4,64:16 at 64-row blocks estimates
// as 64:4,64:16, and at 128-row blocks 256:4 as 128:4 (settings keep what was written).
TEST(UniSparseSelector, QueryFactorAboveBlockPoolsWholeBlocks) {
  const Workload& w = shared_workload(1024);
  const auto same = [&](const std::vector<std::string>& a, const std::vector<std::string>& b) {
    const SparsePattern pa = run(*make("unisparse", a), w), pb = run(*make("unisparse", b), w);
    EXPECT_EQ(pa.block_indptr, pb.block_indptr);
    EXPECT_EQ(pa.block_indices, pb.block_indices);
  };
  same({"dense_below=0", "block_q=64", "block_k=64"},
       {"dense_below=0", "block_q=64", "block_k=64", "granularities=64:4,64:16"});
  same({"dense_below=0", "granularities=256:4"}, {"dense_below=0", "granularities=128:4"});
  auto s = make("unisparse", {"block_q=64", "block_k=64"});
  EXPECT_EQ(s->settings().at("granularities"), "128:4,64:16");
  const auto g = static_cast<const UniSparseSelector&>(*s).levels();
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].c_q, 64);
  EXPECT_EQ(g[0].c_k, 4);
}

TEST(UniSparseSelector, DenseFallbackBelowThreshold) { check_dense_fallback("unisparse"); }

TEST(UniSparseSelector, RejectsBadSettings) {
  expect_rejected("unisparse", "top_p", "0");
  expect_rejected("unisparse", "top_p", "2");
  expect_rejected("unisparse", "top_p", "");
  expect_rejected("unisparse", "granularities", "12");     // does not divide 128
  expect_rejected("unisparse", "granularities", "16:3");   // c_k does not divide 128
  expect_rejected("unisparse", "granularities", "16:x");
  expect_rejected("unisparse", "granularities", "16,,64");
  expect_rejected("unisparse", "granularities", "0:4");
  expect_rejected("unisparse", "combine", "sum");
  expect_rejected("unisparse", "levels", "3");
}

}  // namespace
}  // namespace sieve::attention::selector_test
