// block_sparse_attention against the f64 reference restricted by mask_from_pattern (which reads
// the pattern through SparsePattern::contains, independent of the executor's key planning): random
// block patterns with token columns and a local band that overlap the blocks (a key counted twice
// would double its weight), per-KV-head patterns, block sizes that do not divide the lengths,
// empty rows, the full pattern against dense_attention, and malformed or mismatched patterns.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "attention_testing.h"
#include "sieve/attention/executor.h"
#include "sieve/attention/reference.h"
#include "tolerance.h"

using namespace sieve;
using namespace sieve::attention;
using sieve::test::compare;
using sieve::test::Tolerance;

namespace {

// Each causally allowed tile kept with probability `density`; per head ~5% token columns.
SparsePattern random_pattern(int heads, int64_t lq, int64_t lk, int bq, int bk, bool causal,
                             bool per_kv_head, double density, bool columns, int64_t band,
                             uint64_t seed) {
  Rng rng(seed);
  SparsePattern p = SparsePattern::dense(heads, lq, lk, bq, bk, causal, per_kv_head);
  std::vector<int32_t> indptr = {0}, indices;
  for (size_t r = 0; r + 1 < p.block_indptr.size(); ++r) {
    for (int32_t t = p.block_indptr[r]; t < p.block_indptr[r + 1]; ++t)
      if (rng.uniform() < density) indices.push_back(p.block_indices[size_t(t)]);
    indptr.push_back(int32_t(indices.size()));
  }
  p.block_indptr = indptr;
  p.block_indices = indices;
  if (columns) {
    p.column_indptr = {0};
    for (int h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < lk; ++j)
        if (rng.uniform() < 0.05) p.columns.push_back(int32_t(j));
      p.column_indptr.push_back(int32_t(p.columns.size()));
    }
  }
  p.band = band;
  p.validate();
  return p;
}

struct SparseCase {
  int64_t hq, hkv, lq, lk, d;
  int bq, bk;
  bool causal, per_kv_head;
  double density;
  bool columns;
  int64_t band;
  DType in = DType::kF32;
};

void check_sparse(const SparseCase& c, uint64_t seed) {
  const auto in = sieve::test::random_qkv(c.hq, c.hkv, c.lq, c.lk, c.d, c.in, seed);
  const int heads = int(c.per_kv_head ? c.hkv : c.hq);
  const SparsePattern p = random_pattern(heads, c.lq, c.lk, c.bq, c.bk, c.causal, c.per_kv_head,
                                         c.density, c.columns, c.band, seed + 1);
  const AttentionOptions opts{c.causal, 0.0f};
  const ReferenceResult ref =
      reference_attention(in.q, in.k, in.v, opts, mask_from_pattern(p, c.hq, c.hkv));
  const std::string what = "lq " + std::to_string(c.lq) + " lk " + std::to_string(c.lk) +
                           " blocks " + std::to_string(c.bq) + "x" + std::to_string(c.bk) +
                           " band " + std::to_string(c.band) + (c.causal ? " causal" : "") +
                           (c.per_kv_head ? " per-kv-head" : "") + " token density " +
                           std::to_string(p.token_density());
  for (const std::string& isa : sieve::test::available_isas()) {
    sieve::test::IsaGuard guard(isa);
    Tensor out(DType::kF32, {c.hq, c.lq, c.d}), lse(DType::kF32, {c.hq, c.lq});
    const TensorView lse_view = lse.view();
    block_sparse_attention(in.q, in.k, in.v, p, out, opts, &lse_view);
    const auto cmp = compare(sieve::test::to_vector(out), ref.out, Tolerance{});
    EXPECT_TRUE(cmp.ok) << what << " isa " << isa << ": " << cmp.message();
    const auto got_lse = sieve::test::to_vector(lse);
    for (size_t i = 0; i < got_lse.size(); ++i) {
      if (std::isinf(ref.lse[i])) {
        ASSERT_EQ(got_lse[i], ref.lse[i]) << what << " isa " << isa << " empty row " << i;
      } else {
        ASSERT_NEAR(got_lse[i], ref.lse[i], sieve::test::kAttnLseTol * (1 + std::fabs(ref.lse[i])))
            << what << " isa " << isa << " row " << i;
      }
    }
  }
}

}  // namespace

TEST(BlockSparseCpu, RandomBlocksOnly) {
  check_sparse({2, 2, 300, 300, 64, 64, 64, true, false, 0.4, false, 0}, 101);
  check_sparse({2, 1, 256, 256, 128, 128, 128, true, false, 0.5, false, 0}, 102);
}

TEST(BlockSparseCpu, ColumnsAndBandOverlappingBlocks) {
  check_sparse({2, 2, 300, 300, 64, 64, 64, true, false, 0.4, true, 70}, 111);
  check_sparse({3, 1, 333, 333, 64, 48, 100, true, false, 0.3, true, 150}, 112);
  check_sparse({2, 2, 200, 200, 128, 128, 32, true, false, 0.6, true, 1}, 113);
}

TEST(BlockSparseCpu, NonCausalAndShortQueryChunk) {
  check_sparse({2, 1, 150, 260, 64, 64, 64, false, false, 0.4, true, 40}, 121);
  check_sparse({2, 2, 90, 400, 64, 32, 128, true, false, 0.5, true, 60}, 122);
}

TEST(BlockSparseCpu, PerKvHeadPatternsWithGqa) {
  check_sparse({4, 2, 260, 260, 64, 64, 64, true, true, 0.4, true, 30}, 131);
  check_sparse({6, 2, 200, 200, 128, 200, 16, true, true, 0.5, true, 0}, 132);
}

TEST(BlockSparseCpu, HalfInputsAndOddHeadDim) {
  check_sparse({2, 1, 200, 200, 128, 64, 64, true, false, 0.4, true, 50, DType::kBF16}, 141);
  check_sparse({2, 1, 200, 200, 64, 64, 64, true, false, 0.4, true, 50, DType::kF16}, 142);
  check_sparse({2, 1, 150, 150, 20, 32, 32, true, false, 0.5, true, 10}, 143);
}

TEST(BlockSparseCpu, EmptyRowsGiveZerosAndMinusInfLse) {
  // density 0, no band, no columns: every row is empty
  check_sparse({2, 1, 130, 130, 64, 64, 64, true, false, 0.0, false, 0}, 151);
}

TEST(BlockSparseCpu, FullPatternEqualsDense) {
  const auto in = sieve::test::random_qkv(3, 1, 300, 300, 64, DType::kF32, 161);
  Tensor dense(DType::kF32, {3, 300, 64}), sparse(DType::kF32, {3, 300, 64});
  dense_attention(in.q, in.k, in.v, dense, {});
  // block_q 128 tiles like the dense path and adds keys in the same order: bitwise equal
  block_sparse_attention(in.q, in.k, in.v, SparsePattern::dense(3, 300, 300, 128, 64, true),
                         sparse, {});
  EXPECT_EQ(sieve::test::to_vector(dense), sieve::test::to_vector(sparse));
  // other block sizes give other tiles: equal within the f32 tolerance
  block_sparse_attention(in.q, in.k, in.v, SparsePattern::dense(3, 300, 300, 48, 80, true),
                         sparse, {});
  const auto cmp =
      compare(sieve::test::to_vector(sparse), sieve::test::to_vector(dense), Tolerance{});
  EXPECT_TRUE(cmp.ok) << cmp.message();
}

TEST(BlockSparseCpu, MismatchedOrMalformedPatternsThrow) {
  const auto in = sieve::test::random_qkv(4, 2, 100, 100, 64, DType::kF32, 171);
  Tensor out(DType::kF32, {4, 100, 64});
  auto expect_msg = [&](const SparsePattern& p, const AttentionOptions& o, const std::string& needle) {
    try {
      block_sparse_attention(in.q, in.k, in.v, p, out, o);
      ADD_FAILURE() << "expected sieve::Error with '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_msg(SparsePattern::dense(4, 90, 100, 64, 64, true), {}, "pattern is for seq_len_q 90");
  expect_msg(SparsePattern::dense(2, 100, 100, 64, 64, true), {}, "pattern has 2 heads");
  expect_msg(SparsePattern::dense(4, 100, 100, 64, 64, true, true), {}, "KV (per_kv_head)");
  expect_msg(SparsePattern::dense(4, 100, 100, 64, 64, false), {}, "attention options are causal");
  SparsePattern bad = SparsePattern::dense(4, 100, 100, 64, 64, true);
  bad.block_indices[2] = 0;  // row (head 0, q block 1) lists {0, 0}
  expect_msg(bad, {}, "sorted and unique");
  SparsePattern above = SparsePattern::dense(4, 100, 100, 64, 64, true);
  above.block_indices[0] = 1;  // query block 0 sees only key block 0
  expect_msg(above, {}, "above the causal diagonal");
}
