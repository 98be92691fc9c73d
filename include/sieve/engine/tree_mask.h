// Attention mask among a block of new tokens: row i may attend new token j when bit (i, j) is set
// (every cached row is always visible). A causal chain sets j <= i; a speculative token tree sets
// each node's ancestors and itself (SpecInfer/EAGLE tree attention). Rows are bitsets of 64-bit
// words, so a 60-token tree costs one word per row.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace sieve::engine {

class TreeMask {
 public:
  TreeMask() = default;
  /// An empty mask (no bits set) over n tokens.
  explicit TreeMask(int64_t n);

  /// Lower triangle including the diagonal.
  static TreeMask causal(int64_t n);
  /// Ancestor mask of a tree given by parent indices (-1 for roots; parent[i] < i).
  /// @throws sieve::Error when a parent index is out of range or not before its child
  static TreeMask from_parents(std::span<const int64_t> parents);

  int64_t size() const { return n_; }
  bool get(int64_t i, int64_t j) const {
    return (bits_[size_t(i * words_ + (j >> 6))] >> (j & 63)) & 1u;
  }
  void set(int64_t i, int64_t j, bool on = true);
  /// Depth of each token (number of set bits in its row minus one): its RoPE offset in a tree.
  std::vector<int64_t> depths() const;
  /// Whether the mask is exactly causal().
  bool is_causal() const;

 private:
  int64_t n_ = 0, words_ = 0;
  std::vector<uint64_t> bits_;
};

}  // namespace sieve::engine
