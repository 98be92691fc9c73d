#include "sieve/engine/tree_mask.h"

#include "sieve/core/error.h"

#include <bit>

namespace sieve::engine {

TreeMask::TreeMask(int64_t n) : n_(n), words_((n + 63) / 64) {
  SIEVE_CHECK(n >= 0, "TreeMask size must be non-negative, got {}", n);
  bits_.assign(size_t(n_ * words_), 0);
}

TreeMask TreeMask::causal(int64_t n) {
  TreeMask m(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) m.set(i, j);
  }
  return m;
}

TreeMask TreeMask::from_parents(std::span<const int64_t> parents) {
  const int64_t n = int64_t(parents.size());
  TreeMask m(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = parents[size_t(i)];
    SIEVE_CHECK(p >= -1 && p < i, "tree parent of node {} must be -1 or in [0, {}), got {}", i, i,
                p);
    if (p >= 0) {  // a node sees what its parent sees, plus itself
      for (int64_t w = 0; w < m.words_; ++w) {
        m.bits_[size_t(i * m.words_ + w)] = m.bits_[size_t(p * m.words_ + w)];
      }
    }
    m.set(i, i);
  }
  return m;
}

void TreeMask::set(int64_t i, int64_t j, bool on) {
  SIEVE_CHECK(i >= 0 && i < n_ && j >= 0 && j < n_, "TreeMask index ({}, {}) outside {}x{}", i, j,
              n_, n_);
  uint64_t& w = bits_[size_t(i * words_ + (j >> 6))];
  const uint64_t bit = uint64_t(1) << (j & 63);
  w = on ? (w | bit) : (w & ~bit);
}

std::vector<int64_t> TreeMask::depths() const {
  std::vector<int64_t> d(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) {
    int64_t c = 0;
    for (int64_t w = 0; w < words_; ++w) c += std::popcount(bits_[size_t(i * words_ + w)]);
    d[size_t(i)] = c - 1;
  }
  return d;
}

bool TreeMask::is_causal() const {
  for (int64_t i = 0; i < n_; ++i) {
    for (int64_t j = 0; j < n_; ++j) {
      if (get(i, j) != (j <= i)) return false;
    }
  }
  return true;
}

}  // namespace sieve::engine
