// SparsePattern: validation errors, the dense pattern (hand-counted), membership and densities
// (hand-computed cases and a brute-force count over every causal (i, j) pair).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "sieve/attention/sparse_pattern.h"
#include "sieve/core/error.h"
#include "sieve/core/rng.h"

using sieve::attention::SparsePattern;

namespace {

// Expects `fn` to throw sieve::Error whose message contains `needle`.
template <class Fn>
void expect_error(Fn fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no sieve::Error thrown, expected one mentioning '" << needle << "'";
  } catch (const sieve::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message '" << e.what() << "' lacks '" << needle << "'";
  }
}

SparsePattern small_pattern() {
  // Lq = Lk = 4, blocks of 2: head 0 keeps key block 0 for query block 0 only, band 1.
  SparsePattern p;
  p.seq_len_q = p.seq_len_k = 4;
  p.block_q = p.block_k = 2;
  p.num_heads = 1;
  p.block_indptr = {0, 1, 1};
  p.block_indices = {0};
  p.band = 1;
  return p;
}

// Brute force over every (head, i, j) with the causal rule written out here.
// head < 0: all heads.
double brute_token_density(const SparsePattern& p, int64_t head = -1) {
  double kept = 0, total = 0;
  const int64_t off = p.seq_len_k - p.seq_len_q;
  for (int64_t h = 0; h < p.num_heads; ++h)
    for (int64_t i = 0; i < p.seq_len_q && (head < 0 || h == head); ++i)
      for (int64_t j = 0; j < p.seq_len_k; ++j) {
        if (p.causal && j > i + off) continue;
        total += 1;
        kept += p.contains(h, i, j) ? 1 : 0;
      }
  return kept / total;
}

}  // namespace

TEST(SparsePattern, DenseCausalCountsBlocksByHand) {
  const SparsePattern p = SparsePattern::dense(2, 300, 300, 128, 128, /*causal=*/true);
  p.validate();
  // query block 0 sees key block 0; block 1 sees 0,1; block 2 (rows 256..299) sees 0,1,2
  EXPECT_EQ(p.block_indptr, (std::vector<int32_t>{0, 1, 3, 6, 7, 9, 12}));
  EXPECT_EQ(p.block_indices, (std::vector<int32_t>{0, 0, 1, 0, 1, 2, 0, 0, 1, 0, 1, 2}));
  EXPECT_DOUBLE_EQ(p.block_density(), 1.0);
  EXPECT_DOUBLE_EQ(p.token_density(), 1.0);
}

TEST(SparsePattern, DenseBottomRightAlignment) {
  // 100 queries at the end of 300 keys: the single query block sees all 3 key blocks.
  const SparsePattern p = SparsePattern::dense(1, 100, 300, 128, 128, true);
  p.validate();
  EXPECT_EQ(p.block_indices, (std::vector<int32_t>{0, 1, 2}));
  // Query block of 64 rows at the end of 300 keys with key blocks of 64: last pos 299 -> 5 blocks.
  const SparsePattern p2 = SparsePattern::dense(1, 64, 300, 64, 64, true);
  EXPECT_EQ(p2.block_indices.size(), 5u);
  EXPECT_DOUBLE_EQ(p2.token_density(), 1.0);
}

TEST(SparsePattern, DenseNonCausalHasEveryBlock) {
  const SparsePattern p = SparsePattern::dense(3, 200, 260, 64, 128, false);
  p.validate();
  EXPECT_EQ(p.block_indices.size(), size_t(3 * 4 * 3));
  EXPECT_DOUBLE_EQ(p.block_density(), 1.0);
  EXPECT_DOUBLE_EQ(p.token_density(), 1.0);
}

TEST(SparsePattern, HandComputedDensities) {
  SparsePattern p = small_pattern();
  p.validate();
  // causal tiles: q block 0 -> 1, q block 1 -> 2; one selected
  EXPECT_DOUBLE_EQ(p.block_density(), 1.0 / 3.0);
  // causal pairs 1+2+3+4 = 10; kept: row0 {0}, row1 {0,1}, row2 {2}, row3 {3}
  EXPECT_DOUBLE_EQ(p.token_density(), 0.5);
  p.column_indptr = {0, 1};
  p.columns = {0};  // adds key 0 for rows 2 and 3
  p.validate();
  EXPECT_DOUBLE_EQ(p.token_density(), 0.7);
  EXPECT_TRUE(p.contains(0, 3, 0));
  EXPECT_TRUE(p.contains(0, 3, 3));
  EXPECT_FALSE(p.contains(0, 3, 1));
  EXPECT_FALSE(p.contains(0, 2, 1));
  EXPECT_TRUE(p.contains(0, 1, 1));
}

// A random valid pattern: a subset of the allowed tiles (via the dense pattern), maybe columns.
static SparsePattern random_pattern(sieve::Rng& rng, int64_t seq_len_q, int64_t seq_len_k,
                                    int block_q, int block_k, int num_heads, bool causal,
                                    int64_t band) {
  SparsePattern p;
  p.seq_len_q = seq_len_q;
  p.seq_len_k = seq_len_k;
  p.block_q = block_q;
  p.block_k = block_k;
  p.num_heads = num_heads;
  p.causal = causal;
  p.band = band;
  const SparsePattern full = SparsePattern::dense(p.num_heads, p.seq_len_q, p.seq_len_k,
                                                  p.block_q, p.block_k, p.causal);
  p.block_indptr = {0};
  for (size_t r = 0; r + 1 < full.block_indptr.size(); ++r) {
    for (int32_t t = full.block_indptr[r]; t < full.block_indptr[r + 1]; ++t)
      if (rng.uniform() < 0.4) p.block_indices.push_back(full.block_indices[t]);
    p.block_indptr.push_back(int32_t(p.block_indices.size()));
  }
  if (rng.below(2)) {
    p.column_indptr = {0};
    for (int h = 0; h < p.num_heads; ++h) {
      for (int64_t j = 0; j < p.seq_len_k; ++j)
        if (rng.uniform() < 0.1) p.columns.push_back(int32_t(j));
      p.column_indptr.push_back(int32_t(p.columns.size()));
    }
  }
  p.validate();
  return p;
}

TEST(SparsePattern, TokenDensityMatchesBruteForceOnRandomPatterns) {
  sieve::Rng rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t lk = 1 + int64_t(rng.below(200));
    const int64_t lq = 1 + int64_t(rng.below(uint64_t(lk)));
    const int bq = 1 + int(rng.below(40)), bk = 1 + int(rng.below(40));
    const int heads = 1 + int(rng.below(3));
    const bool causal = rng.below(4) != 0;
    const int64_t band = int64_t(rng.below(3)) * int64_t(rng.below(30));
    const SparsePattern p = random_pattern(rng, lq, lk, bq, bk, heads, causal, band);
    const SparsePattern full = SparsePattern::dense(heads, lq, lk, bq, bk, causal);
    EXPECT_NEAR(p.token_density(), brute_token_density(p), 1e-12) << "trial " << trial;
    const std::vector<double> per_head = p.head_token_densities();
    ASSERT_EQ(per_head.size(), size_t(heads));
    for (int h = 0; h < heads; ++h)
      EXPECT_NEAR(per_head[size_t(h)], brute_token_density(p, h), 1e-12)
          << "trial " << trial << " head " << h;
    EXPECT_NEAR(p.block_density(),
                double(p.block_indices.size()) / double(full.block_indices.size()), 1e-12);
  }
}

// united keeps exactly the pairs either pattern keeps (membership checked pair by pair), also
// when one pattern is per KV head and serves a group of query heads.
TEST(SparsePattern, UnitedKeepsExactlyThePairsOfEither) {
  sieve::Rng rng(11);
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t lk = 1 + int64_t(rng.below(150));
    const int64_t lq = 1 + int64_t(rng.below(uint64_t(lk)));
    const int bq = 1 + int(rng.below(30)), bk = 1 + int(rng.below(30));
    const bool causal = rng.below(4) != 0;
    const int group = 1 + int(rng.below(3)), kv = 1 + int(rng.below(2));
    const SparsePattern a = random_pattern(rng, lq, lk, bq, bk, kv * group, causal,
                                           int64_t(rng.below(20)));
    SparsePattern b = random_pattern(rng, lq, lk, bq, bk, kv, causal, int64_t(rng.below(20)));
    b.per_kv_head = group > 1;
    const SparsePattern u = SparsePattern::united(a, b);
    ASSERT_EQ(u.num_heads, kv * group) << "trial " << trial;
    EXPECT_EQ(SparsePattern::united(b, a).block_indices, u.block_indices) << "trial " << trial;
    for (int h = 0; h < u.num_heads; ++h)
      for (int64_t i = 0; i < lq; ++i)
        for (int64_t j = 0; j < lk; ++j)
          ASSERT_EQ(u.contains(h, i, j), a.contains(h, i, j) || b.contains(h / group, i, j))
              << "trial " << trial << " head " << h << " (" << i << ", " << j << ")";
  }
  sieve::Rng r2(3);
  const SparsePattern a = random_pattern(r2, 8, 8, 2, 2, 2, true, 0);
  expect_error([&] { SparsePattern::united(a, random_pattern(r2, 8, 12, 2, 2, 2, true, 0)); },
               "patterns differ in sizes");
  expect_error([&] { SparsePattern::united(a, random_pattern(r2, 8, 8, 2, 2, 3, true, 0)); },
               "head counts 2 and 3");
  // a per-query-head pattern of fewer heads cannot serve a group
  expect_error([&] { SparsePattern::united(a, random_pattern(r2, 8, 8, 2, 2, 1, true, 0)); },
               "head counts 2 and 1");
}

TEST(SparsePattern, ValidateRejectsMalformedPatterns) {
  {
    SparsePattern p = small_pattern();
    p.block_indptr = {0, 1};
    expect_error([&] { p.validate(); }, "block_indptr has 2 entries, expected 3");
  }
  {
    SparsePattern p = small_pattern();
    p.block_indptr = {0, 1, 2};
    expect_error([&] { p.validate(); }, "block_indptr ends at 2 but there are 1");
  }
  {
    SparsePattern p = small_pattern();
    p.block_indptr = {0, 2, 3};
    p.block_indices = {1, 0, 0};
    expect_error([&] { p.validate(); }, "sorted and unique");
  }
  {
    SparsePattern p = small_pattern();
    p.block_indptr = {0, 0, 2};
    p.block_indices = {1, 1};
    expect_error([&] { p.validate(); }, "sorted and unique");
  }
  {
    SparsePattern p = small_pattern();
    p.block_indptr = {0, 0, 1};
    p.block_indices = {2};
    expect_error([&] { p.validate(); }, "out of range [0, 2)");
  }
  {
    SparsePattern p = small_pattern();
    p.block_indices = {-1};
    expect_error([&] { p.validate(); }, "out of range");
  }
  {
    SparsePattern p = small_pattern();
    p.block_indptr = {0, 1, 1};
    p.block_indices = {1};  // query block 0 (rows 0..1) cannot see keys 2..3
    expect_error([&] { p.validate(); }, "entirely above the causal diagonal");
    p.causal = false;
    p.validate();  // fine without causality
  }
  {
    SparsePattern p = small_pattern();
    p.column_indptr = {0, 1};
    p.columns = {4};
    expect_error([&] { p.validate(); }, "column id 4 out of range [0, 4)");
    p.columns = {};
    p.column_indptr = {0};
    expect_error([&] { p.validate(); }, "column_indptr has 1 entries, expected 2");
    p.column_indptr = {0, 2};
    p.columns = {3, 3};
    expect_error([&] { p.validate(); }, "sorted and unique");
    p.column_indptr = {};
    expect_error([&] { p.validate(); }, "column_indptr is empty");
  }
  {
    SparsePattern p = small_pattern();
    p.band = -1;
    expect_error([&] { p.validate(); }, "band must be >= 0");
  }
  {
    SparsePattern p = small_pattern();
    p.block_k = 0;
    expect_error([&] { p.validate(); }, "block sizes must be positive");
  }
  {
    SparsePattern p = small_pattern();
    p.seq_len_q = 5;
    expect_error([&] { p.validate(); }, "exceeds seq_len_k");
  }
  {
    SparsePattern p = small_pattern();
    p.num_heads = 0;
    expect_error([&] { p.validate(); }, "num_heads must be positive");
  }
  expect_error([] { SparsePattern::dense(1, 10, 10, 0, 4, true); }, "sizes must be positive");
}
