// Next-token sampling: greedy, temperature, top-k, top-p (nucleus), min-p, repetition penalty.
//
// Order as in Hugging Face generate(): repetition penalty (CTRL rule: positive logits divided,
// negative multiplied) -> temperature -> top-k -> top-p (smallest set with cumulative probability
// >= p) -> min-p (keep p >= min_p * p_max) -> draw. temperature <= 0 means greedy (argmax after
// the penalty; ties go to the lowest id). Draws come from a seeded sieve::Rng.
#pragma once

#include "sieve/core/rng.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sieve::engine {

struct SamplerConfig {
  float temperature = 0.0f;      // <= 0: greedy
  int64_t top_k = 0;             // 0: off
  float top_p = 1.0f;            // 1: off
  float min_p = 0.0f;            // 0: off
  float repetition_penalty = 1.0f;  // 1: off
  int64_t repetition_window = 0;    // last N tokens of the history; 0: all
  uint64_t seed = 0;

  /// @throws sieve::Error for a value out of range (top_p not in (0, 1], penalty <= 0, ...)
  void validate() const;
  bool greedy() const { return temperature <= 0.0f; }
  std::string describe() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplerConfig& config);
  const SamplerConfig& config() const { return config_; }

  /// The distribution a draw comes from: probabilities over the vocabulary after every step above
  /// (zeros outside the kept set; one-hot at the argmax when greedy).
  std::vector<float> distribution(std::span<const float> logits,
                                  std::span<const int32_t> history = {}) const;
  /// Draws the next token. @throws sieve::Error for empty or all-NaN logits
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history = {});

  Rng& rng() { return rng_; }

 private:
  SamplerConfig config_;
  Rng rng_;
};

/// Index of the largest value (lowest index on ties; NaN never wins).
int32_t argmax(std::span<const float> values);

}  // namespace sieve::engine
