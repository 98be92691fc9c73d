#include "sieve/engine/sampler.h"

#include "sieve/core/error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

namespace sieve::engine {

namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
}

void SamplerConfig::validate() const {
  SIEVE_CHECK(std::isfinite(temperature), "temperature must be finite, got {}", temperature);
  SIEVE_CHECK(top_k >= 0, "top_k must be >= 0 (0 = off), got {}", top_k);
  SIEVE_CHECK(top_p > 0.0f && top_p <= 1.0f, "top_p must be in (0, 1], got {}", top_p);
  SIEVE_CHECK(min_p >= 0.0f && min_p <= 1.0f, "min_p must be in [0, 1], got {}", min_p);
  SIEVE_CHECK(repetition_penalty > 0.0f && std::isfinite(repetition_penalty),
              "repetition_penalty must be positive, got {}", repetition_penalty);
  SIEVE_CHECK(repetition_window >= 0, "repetition_window must be >= 0, got {}", repetition_window);
}

std::string SamplerConfig::describe() const {
  if (greedy()) {
    return repetition_penalty != 1.0f ? fmt::format("greedy, repetition penalty {}", repetition_penalty)
                                      : std::string("greedy");
  }
  std::string s = fmt::format("temperature {}", temperature);
  if (top_k > 0) s += fmt::format(", top-k {}", top_k);
  if (top_p < 1.0f) s += fmt::format(", top-p {}", top_p);
  if (min_p > 0.0f) s += fmt::format(", min-p {}", min_p);
  if (repetition_penalty != 1.0f) s += fmt::format(", repetition penalty {}", repetition_penalty);
  return s + fmt::format(", seed {}", seed);
}

int32_t argmax(std::span<const float> values) {
  SIEVE_CHECK(!values.empty(), "argmax of an empty vector");
  int32_t best = -1;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) continue;
    if (best < 0 || values[i] > values[size_t(best)]) best = int32_t(i);
  }
  SIEVE_CHECK(best >= 0, "all {} logits are NaN", values.size());
  return best;
}

Sampler::Sampler(const SamplerConfig& config) : config_(config), rng_(config.seed) {
  config_.validate();
}

std::vector<float> Sampler::distribution(std::span<const float> logits,
                                         std::span<const int32_t> history) const {
  const size_t n = logits.size();
  SIEVE_CHECK(n > 0, "cannot sample from empty logits");
  std::vector<double> l(n);
  for (size_t i = 0; i < n; ++i) l[i] = std::isnan(logits[i]) ? kNegInf : double(logits[i]);

  if (config_.repetition_penalty != 1.0f && !history.empty()) {
    const size_t from = config_.repetition_window > 0 && size_t(config_.repetition_window) < history.size()
                            ? history.size() - size_t(config_.repetition_window)
                            : 0;
    std::unordered_set<int32_t> seen(history.begin() + ptrdiff_t(from), history.end());
    const double pen = config_.repetition_penalty;
    for (int32_t t : seen) {
      SIEVE_CHECK(t >= 0 && size_t(t) < n, "history token {} outside the vocabulary [0, {})", t, n);
      l[size_t(t)] = l[size_t(t)] > 0 ? l[size_t(t)] / pen : l[size_t(t)] * pen;
    }
  }

  std::vector<float> p(n, 0.0f);
  if (config_.greedy()) {
    size_t best = 0;
    for (size_t i = 1; i < n; ++i) {
      if (l[i] > l[best]) best = i;
    }
    SIEVE_CHECK(l[best] > kNegInf, "all logits are -inf or NaN");
    p[best] = 1.0f;
    return p;
  }

  for (auto& v : l) v /= double(config_.temperature);

  // top-k keeps every token tied with the k-th largest value (as HF's TopKLogitsWarper does).
  if (config_.top_k > 0 && size_t(config_.top_k) < n) {
    std::vector<double> sorted(l);
    std::nth_element(sorted.begin(), sorted.begin() + (config_.top_k - 1), sorted.end(),
                     std::greater<>());
    const double kth = sorted[size_t(config_.top_k - 1)];
    for (auto& v : l) {
      if (v < kth) v = kNegInf;
    }
  }

  auto softmax = [&](std::vector<double>& probs) {
    const double mx = *std::max_element(l.begin(), l.end());
    SIEVE_CHECK(mx > kNegInf, "all logits are -inf or NaN");
    double sum = 0;
    probs.resize(n);
    for (size_t i = 0; i < n; ++i) {
      probs[i] = l[i] > kNegInf ? std::exp(l[i] - mx) : 0.0;
      sum += probs[i];
    }
    for (auto& q : probs) q /= sum;
  };
  std::vector<double> probs;

  // top-p: walk tokens from the least likely up and drop them while the mass dropped so far
  // stays <= 1 - p; the most likely token always survives.
  if (config_.top_p < 1.0f) {
    softmax(probs);
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return l[a] < l[b]; });
    double cum = 0;
    const double limit = 1.0 - double(config_.top_p);
    for (size_t r = 0; r + 1 < n; ++r) {
      cum += probs[order[r]];
      if (cum > limit) break;
      l[order[r]] = kNegInf;
    }
  }

  if (config_.min_p > 0.0f) {
    softmax(probs);
    const double top = *std::max_element(probs.begin(), probs.end());
    const double cut = double(config_.min_p) * top;
    for (size_t i = 0; i < n; ++i) {
      if (probs[i] < cut) l[i] = kNegInf;
    }
  }

  softmax(probs);
  for (size_t i = 0; i < n; ++i) p[i] = float(probs[i]);
  return p;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const std::vector<float> p = distribution(logits, history);
  if (config_.greedy()) return argmax(p);
  double u = rng_.uniform();
  int32_t last = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0.0f) continue;
    last = int32_t(i);
    u -= double(p[i]);
    if (u < 0) return int32_t(i);
  }
  return last;  // rounding left a sliver of mass: the last kept token
}

}  // namespace sieve::engine
