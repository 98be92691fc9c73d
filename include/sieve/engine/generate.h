// Autoregressive generation on top of Model: prefill the prompt (chunked), then decode one token
// per step with a Sampler, calling back with each token so a front end can stream text. Reports
// time to first token and prefill / decode throughput.
#pragma once

#include "sieve/engine/model.h"
#include "sieve/engine/sampler.h"

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace sieve::engine {

struct GenerateConfig {
  int64_t max_tokens = 128;
  SamplerConfig sampler;
  /// Stop when the model emits one of these ids (defaults to config.eos_token_ids when empty and
  /// stop_at_eos is set).
  std::vector<int64_t> stop_tokens;
  bool stop_at_eos = true;
  /// Prefill chunk length; 0 = the whole prompt in one block.
  int64_t prefill_chunk = 0;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated tokens (the stop token included when hit)
  bool stopped_by_token = false;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;   // prompt forward
  double ttft_seconds = 0;      // prompt forward + first sample
  double decode_seconds = 0;    // the remaining steps
  double prefill_tokens_per_second() const;
  /// Tokens after the first one, per second of decoding.
  double decode_tokens_per_second() const;
};

/// Called with each new token; return false to stop.
using TokenCallback = std::function<bool(int32_t token)>;

/// Generates up to max_tokens after `prompt` (non-empty), using a fresh cache.
/// @throws sieve::Error for an empty prompt or invalid token ids
GenerateResult generate(Model& model, std::span<const int32_t> prompt, const GenerateConfig& config,
                        const TokenCallback& on_token = {});

}  // namespace sieve::engine
