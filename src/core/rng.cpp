#include "sieve/core/rng.h"

namespace sieve {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
  for (uint64_t k = 0; k < stream; ++k) jump();
}

double Rng::normal() {
  if (has_cached_) {
    has_cached_ = false;
    return cached_normal_;
  }
  double u, v, s;
  do {
    u = 2.0 * uniform() - 1.0;
    v = 2.0 * uniform() - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  const double f = std::sqrt(-2.0 * std::log(s) / s);
  cached_normal_ = v * f;
  has_cached_ = true;
  return u * f;
}

uint64_t Rng::below(uint64_t n) {
  if (n <= 1) return 0;
  // Lemire's nearly-divisionless method with rejection for exact uniformity.
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    const __uint128_t m = __uint128_t(next()) * n;
    if (uint64_t(m) >= threshold) return uint64_t(m >> 64);
  }
}

void Rng::jump() {
  static constexpr uint64_t kJump[] = {0x180ec6d33cfd0abaull, 0xd5a61266f0c9392cull,
                                       0xa9582618e03fc9aaull, 0x39abdc4529b1661cull};
  uint64_t t[4] = {0, 0, 0, 0};
  for (uint64_t j : kJump)
    for (int b = 0; b < 64; ++b) {
      if (j & (uint64_t(1) << b))
        for (int i = 0; i < 4; ++i) t[i] ^= s_[i];
      next();
    }
  for (int i = 0; i < 4; ++i) s_[i] = t[i];
  has_cached_ = false;
}

}  // namespace sieve
