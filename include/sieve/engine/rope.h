// Rotary position embedding (RoPE, Su et al. 2021) in the Hugging Face "rotate half" layout:
// for i < d/2, (x[i], x[i + d/2]) is rotated by angle position * inv_freq[i].
//
// Frequencies follow transformers' f32 arithmetic: inv_freq[i] = 1 / theta^(2i/d), then the
// `linear` (divide by factor) or `llama3` (long wavelengths divided by factor, short ones kept,
// smooth interpolation between) scaling; angles are f32 products position * inv_freq.
#pragma once

#include "sieve/engine/config.h"

#include <cstdint>
#include <vector>

namespace sieve::engine {

/// inv_freq [head_dim / 2] for `rope` (scaling applied).
std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim);

/// Rotates `num_heads` consecutive head vectors of `head_dim` floats in place.
void apply_rope(float* x, int64_t num_heads, int64_t head_dim, int64_t position,
                const std::vector<float>& inv_freq);

}  // namespace sieve::engine
