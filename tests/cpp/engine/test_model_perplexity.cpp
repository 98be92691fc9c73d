// engine::perplexity against the transformers reference logits: mean NLL of the fixture sequence
// computed here in f64 from the reference rows equals the engine's, window arithmetic included.
#include <gtest/gtest.h>

#include <cmath>

#include "sieve/core/error.h"
#include "sieve/engine/linear.h"
#include "sieve/engine/perplexity.h"
#include "test_model_fixtures.h"

namespace sieve::engine {
namespace {

using test::engine_data;
using test::load_reference;

// Mean of -log softmax(ref row i)[seq[i + 1]] for rows [begin, end - 1) of a window.
double reference_nll_sum(const test::EngineReference& ref, const std::vector<int32_t>& seq,
                         int64_t begin, int64_t end) {
  double s = 0;
  for (int64_t i = begin; i + 1 < end; ++i) {
    const float* l = ref.logits_0.data() + i * ref.vocab;
    double mx = l[0];
    for (int64_t j = 1; j < ref.vocab; ++j) mx = std::max(mx, double(l[j]));
    double z = 0;
    for (int64_t j = 0; j < ref.vocab; ++j) z += std::exp(double(l[j]) - mx);
    s += mx + std::log(z) - double(l[seq[size_t(i + 1)]]);
  }
  return s;
}

TEST(Perplexity, MatchesTransformersLogits) {
  if (linear_isa_supported(LinearIsa::kAvx2)) set_linear_isa(LinearIsa::kAvx2);
  const auto ref = load_reference("qwen3");
  Model m(engine_data("qwen3"));
  std::vector<int32_t> seq = ref.prompts[0];
  seq.insert(seq.end(), ref.greedy_0.begin(), ref.greedy_0.end());  // 27 tokens
  // One window over everything: rows 0..25 score tokens 1..26.
  PerplexityConfig pc;
  pc.context = 64;
  pc.logits_chunk = 5;  // several projection chunks
  PerplexityResult r = perplexity(m, seq, pc);
  EXPECT_EQ(r.windows, 1);
  EXPECT_EQ(r.tokens_scored, 26);
  const double want = reference_nll_sum(ref, seq, 0, 27);
  EXPECT_NEAR(r.nll_sum, want, 1e-4 * std::fabs(want));
  EXPECT_NEAR(r.perplexity(), std::exp(want / 26), 1e-4 * std::exp(want / 26));
  EXPECT_EQ(r.attention.pattern_calls, 0);

  // Windows of 11 from a fresh cache each: the first window is prompt 0 itself (reference rows
  // 0..10); the second starts over, so only the first window has reference rows to compare.
  pc.context = 11;
  pc.max_windows = 1;
  r = perplexity(m, seq, pc);
  EXPECT_EQ(r.tokens_scored, 10);
  const double want1 = reference_nll_sum(ref, seq, 0, 11);
  EXPECT_NEAR(r.nll_sum, want1, 1e-4 * std::fabs(want1));
  pc.max_windows = 0;
  r = perplexity(m, seq, pc);
  EXPECT_EQ(r.windows, 2);  // 27 tokens: two full windows of 11, the tail of 5 is not scored
  EXPECT_EQ(r.tokens_scored, 20);
  set_linear_isa(LinearIsa::kAuto);
}

TEST(Perplexity, InvalidInputs) {
  Model m(engine_data("qwen3"));
  const std::vector<int32_t> one = {5};
  EXPECT_THROW(perplexity(m, one, {}), Error);
  const std::vector<int32_t> two = {5, 6};
  PerplexityConfig pc;
  pc.context = 1;
  EXPECT_THROW(perplexity(m, two, pc), Error);
}

// The window plan the CLI prints before the run is the one perplexity() scores, and it checks
// the config itself (a context of 0 once divided by zero in the CLI's own copy of the arithmetic).
TEST(Perplexity, PlanMatchesTheScoredWindows) {
  PerplexityConfig pc;
  pc.context = 11;
  PerplexityPlan p = perplexity_plan(27, pc);
  EXPECT_EQ(p.windows, 2);  // full windows only
  EXPECT_EQ(p.length, 11);
  pc.max_windows = 1;
  EXPECT_EQ(perplexity_plan(27, pc).windows, 1);
  pc.max_windows = 0;
  pc.context = 64;
  p = perplexity_plan(27, pc);  // a short input: one partial window
  EXPECT_EQ(p.windows, 1);
  EXPECT_EQ(p.length, 27);
  for (int64_t bad : {int64_t(0), int64_t(1), int64_t(-5)}) {
    pc.context = bad;
    EXPECT_THROW(perplexity_plan(27, pc), Error) << "context " << bad;
  }
  pc.context = 64;
  pc.max_windows = -1;
  EXPECT_THROW(perplexity_plan(27, pc), Error);
  pc.max_windows = 0;
  EXPECT_THROW(perplexity_plan(1, pc), Error);

  Model m(engine_data("qwen3"));
  const std::vector<int32_t> seq = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
  pc.context = 4;
  const PerplexityResult r = perplexity(m, seq, pc);
  EXPECT_EQ(r.windows, perplexity_plan(int64_t(seq.size()), pc).windows);
  EXPECT_EQ(r.tokens_scored, r.windows * (perplexity_plan(int64_t(seq.size()), pc).length - 1));
}

}  // namespace
}  // namespace sieve::engine
