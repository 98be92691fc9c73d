#include "sieve/engine/perplexity.h"

#include "sieve/core/error.h"
#include "sieve/core/timer.h"

#include <algorithm>
#include <cmath>

namespace sieve::engine {

double PerplexityResult::perplexity() const { return std::exp(mean_nll()); }

PerplexityPlan perplexity_plan(int64_t n, const PerplexityConfig& config) {
  SIEVE_CHECK(config.context >= 2, "perplexity context must be >= 2 tokens, got {}", config.context);
  SIEVE_CHECK(config.max_windows >= 0, "max_windows must be >= 0, got {}", config.max_windows);
  SIEVE_CHECK(config.logits_chunk >= 1, "logits_chunk must be >= 1, got {}", config.logits_chunk);
  SIEVE_CHECK(n >= 2, "perplexity needs at least 2 tokens, got {}", n);
  // Full windows only, so every selector and context length scores comparable text; a short
  // input is scored as one partial window.
  PerplexityPlan plan;
  plan.windows = n >= config.context ? n / config.context : 1;
  if (config.max_windows > 0) plan.windows = std::min(plan.windows, config.max_windows);
  plan.length = std::min(n, config.context);
  return plan;
}

PerplexityResult perplexity(Model& model, std::span<const int32_t> tokens,
                            const PerplexityConfig& config,
                            const std::function<void(int64_t, int64_t)>& on_window) {
  const PerplexityPlan plan = perplexity_plan(int64_t(tokens.size()), config);
  const int64_t windows = plan.windows, len = plan.length;

  PerplexityResult r;
  const AttentionStats before = model.attention_stats();
  Timer timer;
  const int64_t vocab = model.config().vocab_size;
  for (int64_t w = 0; w < windows; ++w) {
    const auto window = tokens.subspan(size_t(w * config.context), size_t(len));
    KvCache cache = model.make_cache(len);
    ForwardInput in;
    in.tokens = window;
    in.logits = LogitsMode::kAll;
    in.return_hidden = true;
    const Tensor hidden = model.forward(in, cache);
    const int64_t h = hidden.size(1);
    for (int64_t r0 = 0; r0 + 1 < len; r0 += config.logits_chunk) {
      const int64_t rows = std::min(config.logits_chunk, len - 1 - r0);
      const Tensor logits = model.project(hidden.data_as<float>() + r0 * h, rows);
      for (int64_t i = 0; i < rows; ++i) {
        const float* l = logits.data_as<float>() + i * vocab;
        double mx = l[0];
        for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, double(l[j]));
        double s = 0;
        for (int64_t j = 0; j < vocab; ++j) s += std::exp(double(l[j]) - mx);
        const int32_t target = window[size_t(r0 + i + 1)];
        r.nll_sum += mx + std::log(s) - double(l[target]);
      }
      r.tokens_scored += rows;
    }
    ++r.windows;
    if (on_window) on_window(w + 1, windows);
  }
  r.seconds = timer.seconds();
  const AttentionStats& after = model.attention_stats();
  r.attention.pattern_calls = after.pattern_calls - before.pattern_calls;
  r.attention.block_density_sum = after.block_density_sum - before.block_density_sum;
  r.attention.token_density_sum = after.token_density_sum - before.token_density_sum;
  r.attention.select_seconds = after.select_seconds - before.select_seconds;
  r.attention.attention_seconds = after.attention_seconds - before.attention_seconds;
  return r;
}

}  // namespace sieve::engine
