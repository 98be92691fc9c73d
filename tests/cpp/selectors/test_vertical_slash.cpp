// MInference vertical-slash selector: properties, planted recall, and the probe + top-k against
// an independent f64 transcription of vertical_and_slash_kernel.
#include "common.h"

namespace sieve::attention::selector_test {
namespace {

// The default budgets (1000, 6096) are absolute token counts meant for 128K; at L = 2048 they keep
// everything, so the tests use budgets of the same share of a short input.
const std::vector<std::string> kRun = {"dense_below=0", "vertical_size=100", "slash_size=200"};

TEST(VerticalSlashSelector, ValidPatternsOnOddShapesAndGqaUnion) {
  check_common("vslash", kRun);
  check_common("vslash", {"dense_below=0", "vertical_size=10,20,30,40", "slash_size=60",
                          "block_q=128", "block_k=128", "last_q=16"});
}

TEST(VerticalSlashSelector, CoversPlantedBandStripesAndNeedle) {
  check_planted("vslash", kRun, {Kind::kBand, Kind::kStripes, Kind::kNeedle, Kind::kMixed}, 0.6);
}

TEST(VerticalSlashSelector, BudgetsMoveDensityMonotonically) {
  check_monotone("vslash", {"dense_below=0", "vertical_size=100"}, "slash_size",
                 {"50", "100", "400", "1000"});
  check_monotone("vslash", {"dense_below=0", "slash_size=50"}, "vertical_size",
                 {"30", "100", "300", "900"});
}

// f64 transcription: the last 64 queries against all keys (causal), softmax, column sums and
// diagonal sums; columns 0..29 and diagonals 0..99 forced; top-k of each.
TEST(VerticalSlashSelector, MatchesIndependentTranscriptionOfTheProbe) {
  const Workload& w = shared_workload(1024);
  const int64_t L = 1024, nv = 60, ns = 80;
  const SparsePattern p = run(*make("vslash", {"dense_below=0", "vertical_size=60",
                                               "slash_size=80"}), w);
  for (int64_t h = 0; h < w.num_heads_q(); ++h) {
    std::vector<double> vertical(size_t(L), 0.0), slash(size_t(L), 0.0);
    for (int64_t i = L - 64; i < L; ++i) {
      const auto& pr = softmax_row(w, h, i);
      for (int64_t j = 0; j <= i; ++j) {
        vertical[size_t(j)] += pr[size_t(j)];
        slash[size_t(i - j)] += pr[size_t(j)];
      }
    }
    for (int64_t j = 0; j < 30; ++j) vertical[size_t(j)] = 1e300;
    for (int64_t o = 0; o < 100; ++o) slash[size_t(o)] = 1e300;
    // Columns: the top nv; only compare away from the k-th value (f32 vs f64 ordering).
    std::vector<double> sorted = vertical;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    const double kth = sorted[size_t(nv - 1)], next = sorted[size_t(nv)];
    for (int64_t j = p.block_k; j < L; ++j) {
      const bool kept = std::binary_search(p.columns.begin() + p.column_indptr[h],
                                           p.columns.begin() + p.column_indptr[h + 1],
                                           int32_t(j));
      if (vertical[size_t(j)] > kth * 1.001 || (vertical[size_t(j)] >= kth && kth > next * 1.01)) {
        EXPECT_TRUE(kept) << "head " << h << " column " << j;
      }
      if (vertical[size_t(j)] < next * 0.999) {
        EXPECT_FALSE(kept) << "head " << h << " column " << j;
      }
    }
    // Slash lines: every strong diagonal's keys are kept for the rows it crosses.
    sorted = slash;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    const double skth = sorted[size_t(ns - 1)];
    for (int64_t o = 0; o < L; ++o) {
      if (slash[size_t(o)] <= skth * 1.001) continue;
      for (int64_t i = o; i < L; i += 37) {
        EXPECT_TRUE(p.contains(h, i, i - o)) << "slash " << o;
      }
    }
  }
}

TEST(VerticalSlashSelector, PerHeadBudgets) {
  const Workload& w = shared_workload(1024);
  const SparsePattern p = run(*make("vslash", {"dense_below=0", "vertical_size=30,60,90,120",
                                               "slash_size=50"}), w);
  // Columns outside the sink block grow with the per-head budget (k minus those in block 0).
  for (int64_t h = 1; h < 4; ++h)
    EXPECT_GT(p.column_indptr[h + 1] - p.column_indptr[h], p.column_indptr[h] - p.column_indptr[h - 1]);
  EXPECT_THROW(run(*make("vslash", {"dense_below=0", "vertical_size=30,60"}), w), sieve::Error);
}

TEST(VerticalSlashSelector, DenseFallbackBelowThreshold) {
  check_dense_fallback("vslash", {"vertical_size=100", "slash_size=100"});
}

TEST(VerticalSlashSelector, RejectsBadSettings) {
  expect_rejected("vslash", "vertical_size", "-1");
  expect_rejected("vslash", "vertical_size", "1000x");
  expect_rejected("vslash", "slash_size", "");
  expect_rejected("vslash", "last_q", "0");
  expect_rejected("vslash", "force_columns", "-3");
  expect_rejected("vslash", "budget", "3");
}

}  // namespace
}  // namespace sieve::attention::selector_test
