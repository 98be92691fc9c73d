// Perplexity of a model on a token sequence: the sequence is cut into consecutive windows of
// `context` tokens; each window is one prefill from an empty cache (so a sparse selector sees the
// whole window, as in long-context prefill), and every token after the first of its window is
// scored by -log p(token | window prefix). perplexity = exp(mean score).
#pragma once

#include "sieve/engine/model.h"

#include <cstdint>
#include <functional>
#include <span>

namespace sieve::engine {

struct PerplexityConfig {
  int64_t context = 2048;     // tokens per window (>= 2)
  int64_t max_windows = 0;    // 0: every full window (or the one partial window of a short input)
  int64_t logits_chunk = 512;  // rows projected to logits at a time (bounds memory)
};

struct PerplexityResult {
  double nll_sum = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  double seconds = 0;
  AttentionStats attention;  // the selector's density over all windows (dense: calls = 0)
  double mean_nll() const { return tokens_scored ? nll_sum / double(tokens_scored) : 0.0; }
  double perplexity() const;
};

/// The windows perplexity() scores for n tokens: full windows of config.context tokens (at most
/// config.max_windows when > 0), or one partial window of all n tokens when n < context.
struct PerplexityPlan {
  int64_t windows = 0, length = 0;  // number of windows, tokens per window
};
/// @throws sieve::Error when n < 2 or the config is invalid (the checks perplexity() makes)
PerplexityPlan perplexity_plan(int64_t n, const PerplexityConfig& config);

/// @param on_window called after each window with (done, total)
/// @throws sieve::Error when fewer than 2 tokens are given or the config is invalid
PerplexityResult perplexity(Model& model, std::span<const int32_t> tokens,
                            const PerplexityConfig& config,
                            const std::function<void(int64_t, int64_t)>& on_window = {});

}  // namespace sieve::engine
