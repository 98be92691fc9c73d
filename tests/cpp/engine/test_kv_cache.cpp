// KV cache rollback (truncate) and compaction (keep_rows), and tree-masked verification blocks:
// each must give the logits of a fresh forward over the tokens that are kept.
#include <gtest/gtest.h>

#include "sieve/engine/model.h"
#include "test_model_fixtures.h"

namespace sieve::engine {
namespace {

using test::engine_data;
using test::row_rel_error;

// Different grouping of the same math (chunks vs one block) only reorders f32 sums.
constexpr double kSameMathRel = 1e-5;

Tensor run(Model& m, KvCache& cache, const std::vector<int32_t>& tokens,
           LogitsMode mode = LogitsMode::kAll, const std::vector<int64_t>& positions = {},
           const TreeMask* tree = nullptr) {
  ForwardInput in;
  in.tokens = tokens;
  in.positions = positions;
  in.maybe_tree = tree;
  in.logits = mode;
  return m.forward(in, cache);
}

void expect_rows_close(const Tensor& got, int64_t got_row, const Tensor& want, int64_t want_row,
                       const std::string& what) {
  const int64_t v = got.size(1);
  ASSERT_EQ(v, want.size(1));
  EXPECT_LE(row_rel_error(got.data_as<float>() + got_row * v, want.data_as<float>() + want_row * v, v),
            kSameMathRel)
      << what;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(KvCache, TruncateThenForwardEqualsFresh) {
  Model m(engine_data("qwen3"));
  const std::vector<int32_t> prefix = {5, 17, 300, 42, 7, 99, 12, 400, 3, 250, 61};
  const std::vector<int32_t> rejected = {77, 78, 79, 80, 81};
  const std::vector<int32_t> accepted = {120, 121, 122, 123};
  KvCache cache = m.make_cache();
  run(m, cache, prefix, LogitsMode::kNone);
  run(m, cache, rejected, LogitsMode::kNone);
  cache.truncate(int64_t(prefix.size()));
  const Tensor got = run(m, cache, accepted);
  KvCache fresh = m.make_cache();
  const Tensor want = run(m, fresh, concat(prefix, accepted));
  for (int64_t i = 0; i < 4; ++i) {
    expect_rows_close(got, i, want, int64_t(prefix.size()) + i, "row " + std::to_string(i));
  }
  // The cache holds exactly the rows of the fresh one.
  ASSERT_EQ(cache.size(), fresh.size());
  for (int64_t r = 0; r < cache.size(); ++r) {
    EXPECT_EQ(cache.positions()[size_t(r)], fresh.positions()[size_t(r)]);
    for (int64_t c = 0; c < cache.head_dim(); ++c) {
      EXPECT_NEAR(cache.key_row(1, 1, r)[c], fresh.key_row(1, 1, r)[c],
                  1e-5 * (1 + std::fabs(fresh.key_row(1, 1, r)[c])));
    }
  }
}

// A token tree after a prefix: node logits equal sequential forwards along each branch.
// Parents: 0 is the root; 1 and 2 are children of 0; 3 and 4 of 1; 5 of 2.
TEST(KvCache, TreeMaskForwardEqualsSequentialBranches) {
  Model m(engine_data("llama"));
  const std::vector<int32_t> prefix = {11, 500, 23, 1000, 7, 8, 640};
  const std::vector<int32_t> nodes = {31, 32, 33, 34, 35, 36};
  const std::vector<int64_t> parents = {-1, 0, 0, 1, 1, 2};
  const TreeMask tree = TreeMask::from_parents(parents);
  const auto depth = tree.depths();
  std::vector<int64_t> pos;
  for (int64_t d : depth) pos.push_back(int64_t(prefix.size()) + d);

  KvCache cache = m.make_cache();
  run(m, cache, prefix, LogitsMode::kNone);
  const Tensor got = run(m, cache, nodes, LogitsMode::kAll, pos, &tree);

  for (size_t i = 0; i < nodes.size(); ++i) {
    std::vector<int32_t> path;  // root .. node i
    for (int64_t n = int64_t(i); n >= 0; n = parents[size_t(n)]) path.insert(path.begin(), nodes[size_t(n)]);
    KvCache fresh = m.make_cache();
    const Tensor want = run(m, fresh, concat(prefix, path), LogitsMode::kLast);
    expect_rows_close(got, int64_t(i), want, 0, "tree node " + std::to_string(i));
  }
}

// Verify a tree, keep the accepted branch (a, c, f) with keep_rows, continue: equals fresh.
TEST(KvCache, KeepRowsCompactionEqualsFresh) {
  Model m(engine_data("qwen2"));
  const std::vector<int32_t> prefix = {40, 41, 300, 5, 6, 77, 128, 256, 9};
  const std::vector<int32_t> nodes = {31, 32, 33, 34, 35, 36};
  const std::vector<int64_t> parents = {-1, 0, 0, 1, 1, 2};
  const TreeMask tree = TreeMask::from_parents(parents);
  std::vector<int64_t> pos;
  for (int64_t d : tree.depths()) pos.push_back(int64_t(prefix.size()) + d);

  KvCache cache = m.make_cache();
  run(m, cache, prefix, LogitsMode::kNone);
  const int64_t base = cache.size();
  run(m, cache, nodes, LogitsMode::kNone, pos, &tree);
  const std::vector<int64_t> keep = {base + 0, base + 2, base + 5};
  cache.keep_rows(base, keep);
  ASSERT_EQ(cache.size(), base + 3);
  const std::vector<int32_t> next = {200, 201};
  const Tensor got = run(m, cache, next);

  KvCache fresh = m.make_cache();
  const Tensor want = run(m, fresh, concat(concat(prefix, {31, 33, 36}), next));
  const int64_t off = int64_t(prefix.size()) + 3;
  expect_rows_close(got, 0, want, off, "first token after compaction");
  expect_rows_close(got, 1, want, off + 1, "second token after compaction");
  for (int64_t r = 0; r < cache.size(); ++r) EXPECT_EQ(cache.positions()[size_t(r)], r);
}

TEST(KvCache, ReserveKeepsContentsAndPositions) {
  KvCache c(2, 3, 4, 2);
  const std::vector<int64_t> p = {10, 11};
  c.append(p);
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t d = 0; d < 4; ++d) {
          c.key_row(l, h, r)[d] = float(1000 * l + 100 * h + 10 * r + d);
          c.value_row(l, h, r)[d] = -float(1000 * l + 100 * h + 10 * r + d);
        }
  c.reserve(50);
  EXPECT_GE(c.capacity(), 50);
  ASSERT_EQ(c.size(), 2);
  EXPECT_EQ(c.positions()[1], 11);
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t d = 0; d < 4; ++d) {
          EXPECT_EQ(c.key_row(l, h, r)[d], float(1000 * l + 100 * h + 10 * r + d));
          EXPECT_EQ(c.values(l).get(h, r, d), -float(1000 * l + 100 * h + 10 * r + d));
        }
  const TensorView k = c.keys(1);
  EXPECT_EQ(k.size(0), 3);
  EXPECT_EQ(k.size(1), 2);
  EXPECT_EQ(k.size(2), 4);
}

TEST(KvCache, InvalidOperationsThrow) {
  KvCache c(1, 1, 2, 4);
  const std::vector<int64_t> p = {0, 1, 2, 3};
  c.append(p);
  EXPECT_THROW(c.truncate(5), Error);
  EXPECT_THROW(c.truncate(-1), Error);
  const std::vector<int64_t> unsorted = {3, 2};
  EXPECT_THROW(c.keep_rows(1, unsorted), Error);
  const std::vector<int64_t> below_base = {0};
  EXPECT_THROW(c.keep_rows(1, below_base), Error);
  const std::vector<int64_t> beyond = {4};
  EXPECT_THROW(c.keep_rows(1, beyond), Error);
  EXPECT_THROW(c.keys(1), Error);
  EXPECT_THROW(KvCache(0, 1, 1), Error);
  const std::vector<int64_t> ok = {1, 3};
  c.keep_rows(1, ok);
  EXPECT_EQ(c.size(), 3);
  EXPECT_EQ(c.positions()[2], 3);
}

TEST(TreeMask, AncestorsDepthsAndCausal) {
  const std::vector<int64_t> parents = {-1, 0, 0, 1, 3};
  const TreeMask t = TreeMask::from_parents(parents);
  const bool want[5][5] = {{1, 0, 0, 0, 0}, {1, 1, 0, 0, 0}, {1, 0, 1, 0, 0}, {1, 1, 0, 1, 0},
                           {1, 1, 0, 1, 1}};
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_EQ(t.get(i, j), want[i][j]) << i << "," << j;
  EXPECT_EQ(t.depths(), (std::vector<int64_t>{0, 1, 1, 2, 3}));
  EXPECT_FALSE(t.is_causal());
  EXPECT_TRUE(TreeMask::causal(70).is_causal());  // more than one 64-bit word per row
  const std::vector<int64_t> chain = {-1, 0, 1, 2};
  EXPECT_TRUE(TreeMask::from_parents(chain).is_causal());
  const std::vector<int64_t> bad = {-1, 1};
  EXPECT_THROW(TreeMask::from_parents(bad), Error);
  const std::vector<int64_t> bad2 = {-2};
  EXPECT_THROW(TreeMask::from_parents(bad2), Error);
}

}  // namespace
}  // namespace sieve::engine
