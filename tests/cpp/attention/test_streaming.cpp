// streaming (A-shape) selector against its definition written out per (row, key) here, in block
// and token modes, for prefill and for a query chunk against a longer KV cache.
#include <gtest/gtest.h>

#include <algorithm>

#include "sieve/attention/selector.h"
#include "sieve/attention/selectors/streaming.h"
#include "sieve/core/error.h"

using namespace sieve;
using namespace sieve::attention;

namespace {

void check_against_definition(const std::vector<std::string>& settings, int64_t lq, int64_t lk,
                              bool block_mode, int64_t sink, int64_t local, int bq, int bk) {
  const Tensor q(DType::kF32, {2, lq, 4}), k(DType::kF32, {1, lk, 4});
  const SparsePattern p = make_selector("streaming", settings)->select(q, k, {});
  const int64_t off = lk - lq;
  for (int64_t i = 0; i < lq; ++i) {
    const int64_t pos = i + off;
    const int64_t block_last_pos = std::min((i / bq + 1) * bq, lq) - 1 + off;
    const int64_t diag = block_last_pos / bk;
    for (int64_t j = 0; j <= pos; ++j) {  // causal keys only: the pattern may hold more above
      bool want;
      if (block_mode) want = j / bk < sink || (j / bk > diag - local && j / bk <= diag);
      else want = j < sink || (j > pos - local);
      for (int64_t h = 0; h < 2; ++h) ASSERT_EQ(p.contains(h, i, j), want) << "i " << i << " j " << j;
    }
  }
}

}  // namespace

TEST(Streaming, DefaultsAreOneSinkAndThreeLocalBlocksOf128) {
  const StreamingSelector s;
  EXPECT_EQ(s.settings().at("mode"), "block");
  EXPECT_EQ(s.config().sink_blocks, 1);
  EXPECT_EQ(s.config().local_blocks, 3);
  EXPECT_EQ(s.common().block_q, 128);
  check_against_definition({}, 1000, 1000, true, 1, 3, 128, 128);
}

TEST(Streaming, BlockModeMatchesDefinition) {
  check_against_definition({"block_q=16", "block_k=8", "sink_blocks=2", "local_blocks=4"}, 203, 203,
                           true, 2, 4, 16, 8);
  check_against_definition({"block_q=16", "block_k=16", "sink_blocks=0", "local_blocks=1"}, 100, 100,
                           true, 0, 1, 16, 16);
  // query chunk against a longer cache (bottom-right alignment)
  check_against_definition({"block_q=16", "block_k=8", "sink_blocks=1", "local_blocks=2"}, 50, 131,
                           true, 1, 2, 16, 8);
}

TEST(Streaming, TokenModeMatchesDefinition) {
  check_against_definition({"mode=token", "block_q=16", "block_k=16", "sink_tokens=5", "local_tokens=20"},
                           150, 150, false, 5, 20, 16, 16);
  check_against_definition({"mode=token", "sink_tokens=0", "local_tokens=1"}, 40, 97, false, 0, 1,
                           128, 128);
}

TEST(Streaming, DensityFallsWithLength) {
  auto s = make_selector("streaming");
  const Tensor q1(DType::kBF16, {1, 2048, 8}), q2(DType::kBF16, {1, 8192, 8});
  const double d1 = s->select(q1, q1, {}).block_density(), d2 = s->select(q2, q2, {}).block_density();
  EXPECT_GT(d1, d2);
  // 64 query blocks: 4 blocks per row except the first three rows (1, 2, 3): (64*4 - 6) / (64*65/2)
  EXPECT_NEAR(d2, (64.0 * 4 - 6) / (64.0 * 65 / 2), 1e-12);
}

TEST(Streaming, RejectsBadSettings) {
  EXPECT_THROW(make_selector("streaming", {"mode=diagonal"}), Error);
  EXPECT_THROW(make_selector("streaming", {"local_blocks=0"}), Error);
  EXPECT_THROW(make_selector("streaming", {"sink_tokens=-3"}), Error);
}
