#include "sieve/engine/rope.h"

#include <cmath>
#include <numbers>

namespace sieve::engine {

std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const float theta = float(rope.theta);
  for (int64_t i = 0; i < half; ++i) {
    // transformers: 1.0 / (theta ** (arange(0, d, 2).float() / d)), all in f32
    const float e = float(2 * i) / float(head_dim);
    inv[size_t(i)] = 1.0f / std::pow(theta, e);
  }
  if (rope.scaling == RopeScaling::kLinear) {
    for (auto& f : inv) f /= float(rope.factor);
  } else if (rope.scaling == RopeScaling::kLlama3) {
    const float factor = float(rope.factor);
    const float lo = float(rope.low_freq_factor), hi = float(rope.high_freq_factor);
    const float old_len = float(rope.original_max_position);
    const float low_freq_wavelen = float(double(rope.original_max_position) / rope.low_freq_factor);
    const float high_freq_wavelen =
        float(double(rope.original_max_position) / rope.high_freq_factor);
    const float two_pi = float(2.0 * std::numbers::pi);
    for (auto& f : inv) {
      const float wavelen = two_pi / f;
      float scaled = wavelen > low_freq_wavelen ? f / factor : f;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      if (medium) {
        const float smooth = (old_len / wavelen - lo) / (hi - lo);
        scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
      }
      f = scaled;
    }
  }
  return inv;
}

void apply_rope(float* x, int64_t num_heads, int64_t head_dim, int64_t position,
                const std::vector<float>& inv_freq) {
  const int64_t half = head_dim / 2;
  const float p = float(position);
  for (int64_t i = 0; i < half; ++i) {
    const float angle = p * inv_freq[size_t(i)];  // f32 product, as transformers computes it
    const float c = float(std::cos(double(angle)));
    const float s = float(std::sin(double(angle)));
    for (int64_t h = 0; h < num_heads; ++h) {
      float* v = x + h * head_dim;
      const float x1 = v[i], x2 = v[i + half];
      v[i] = x1 * c - x2 * s;
      v[i + half] = x2 * c + x1 * s;
    }
  }
}

}  // namespace sieve::engine
