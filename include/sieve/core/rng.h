// Seeded, reproducible random numbers: xoshiro256++ seeded by splitmix64.
//
// Rng(seed, stream) gives independent streams for chains or heads: stream k is the base state
// advanced by k jumps of 2^128, so draws do not depend on the number of threads.
#pragma once

#include <cmath>
#include <cstdint>

namespace sieve {

class Rng {
 public:
  using result_type = uint64_t;
  explicit Rng(uint64_t seed = 0, uint64_t stream = 0);

  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return ~uint64_t(0); }
  uint64_t operator()() { return next(); }

  uint64_t next() {
    const uint64_t r = rotl(s_[0] + s_[3], 23) + s_[0];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  /// Uniform in (0, 1): never returns 0, safe for log().
  double uniform_open() { return (double(next() >> 11) + 0.5) * 0x1.0p-53; }
  /// Standard normal (Marsaglia polar method, caches the second value).
  double normal();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n);
  /// Advances the state by 2^128 draws.
  void jump();

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  double cached_normal_ = 0;
  bool has_cached_ = false;
};

}  // namespace sieve
