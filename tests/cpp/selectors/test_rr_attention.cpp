// RRAttention selector: properties, planted recall, Top-tau monotonicity, query independence.
#include "common.h"

namespace sieve::attention::selector_test {
namespace {

const std::vector<std::string> kRun = {"dense_below=0"};

TEST(RRSelector, ValidPatternsOnOddShapesAndGqaUnion) {
  check_common("rr", kRun);
  check_common("rr", {"dense_below=0", "offset=head", "key_agg=sample", "stride=8"});
}

TEST(RRSelector, CoversPlantedBandStripesAndNeedle) {
  PlantedConfig cfg;
  cfg.seq_len = 2048;
  const Workload w = make_workload(cfg);
  const SparsePattern p = run(*make("rr", kRun), w);
  const RecallReport r = recall(w, p);
  for (size_t h = 0; h < r.planted.size(); ++h)
    EXPECT_GE(r.planted[h], 0.95) << "head " << h << " planted recall";
  // The structure is concentrated: far from every block is needed.
  EXPECT_LT(p.block_density(), 0.6);
}

TEST(RRSelector, TauMovesDensityMonotonically) {
  const Workload w = make_workload(PlantedConfig{});
  SparsePattern prev;
  double prev_density = 0;
  for (const char* tau : {"0.3", "0.6", "0.9", "0.99", "1"}) {
    const SparsePattern p = run(*make("rr", {"dense_below=0", std::string("tau=") + tau}), w);
    EXPECT_GE(p.block_density(), prev_density) << "tau " << tau;
    if (prev_density > 0) {
      EXPECT_TRUE(subset_of(prev, p)) << "tau " << tau << " dropped blocks";
    }
    prev_density = p.block_density();
    prev = p;
  }
  EXPECT_DOUBLE_EQ(prev_density, 1.0);  // tau = 1 keeps every causal block
}

// Rows of query block `qb` of every head.
std::vector<std::vector<int32_t>> block_rows(const SparsePattern& p, int64_t qb) {
  std::vector<std::vector<int32_t>> rows;
  for (int64_t h = 0; h < p.num_heads; ++h) {
    const int64_t r = p.row(h, qb);
    rows.emplace_back(p.block_indices.begin() + p.block_indptr[r],
                      p.block_indices.begin() + p.block_indptr[r + 1]);
  }
  return rows;
}

TEST(RRSelector, QueryIndependence) {
  PlantedConfig cfg;
  cfg.kinds = {Kind::kMixed, Kind::kStripes};
  cfg.num_heads_kv = 1;
  const Workload w = make_workload(cfg);
  const auto sel = make("rr", {"dense_below=0", "tau=0.8"});
  const SparsePattern base = run(*sel, w);
  const int64_t qb = 4, bq = base.block_q;
  // Overwrite every query outside block qb with unrelated values.
  Tensor q2 = Tensor::from(w.q, DType::kF32);
  Rng rng(99);
  for (int64_t h = 0; h < q2.size(0); ++h)
    for (int64_t i = 0; i < q2.size(1); ++i)
      if (i / bq != qb)
        for (int64_t d = 0; d < kDim; ++d) q2.view().set(float(3 * rng.normal()), h, i, d);
  const SparsePattern changed = sel->select(q2, w.k, AttentionOptions{});
  EXPECT_EQ(block_rows(base, qb), block_rows(changed, qb));
  // The other blocks did see the change (the test can fail).
  bool other_changed = false;
  for (int64_t b = 0; b < base.num_q_blocks(); ++b)
    if (b != qb && block_rows(base, b) != block_rows(changed, b)) other_changed = true;
  EXPECT_TRUE(other_changed);
  // Changing the queries inside the block does change its selection.
  Tensor q3 = Tensor::from(w.q, DType::kF32);
  for (int64_t h = 0; h < q3.size(0); ++h)
    for (int64_t i = qb * bq; i < (qb + 1) * bq; ++i)
      for (int64_t d = 0; d < kDim; ++d) q3.view().set(float(3 * rng.normal()), h, i, d);
  EXPECT_NE(block_rows(base, qb), block_rows(sel->select(q3, w.k, AttentionOptions{}), qb));
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
  expect_rejected("rr", "bogus", "1");
  auto s = make("rr", {"stride=32"});
  s->set("block_q", "16");  // stride no longer divides block_q: caught when selecting
  const Workload w = make_workload(PlantedConfig{});
  EXPECT_THROW(run(*s, w), sieve::Error);
}

TEST(RRSelector, SettingsRoundTrip) {
  auto s = make("rr", {"tau=0.7", "stride=8", "offset=head", "key_agg=sample"});
  const auto m = s->settings();
  EXPECT_EQ(m.at("tau"), "0.7");
  EXPECT_EQ(m.at("stride"), "8");
  EXPECT_EQ(m.at("offset"), "head");
  EXPECT_EQ(m.at("key_agg"), "sample");
  EXPECT_EQ(m.at("block_q"), "128");
  auto t = make("rr");
  for (const auto& [k, v] : m) t->set(k, v);
  EXPECT_EQ(t->settings(), m);
}

}  // namespace
}  // namespace sieve::attention::selector_test
