// The tile shapes the library instantiates (one per head dim; bf16 and f16 share them).
// Chosen by bench/gpu/bench_attention_cuda on an H200 (see docs/results/gpu-attention.md); kept in a
// plain header so that host code (pattern checks, kernel_info) sees them without CUDA types.
#pragma once

namespace sieve::attention::cuda {

struct FlashShape {
  int head_dim, block_n, warps, m_tiles;  // block_m = warps * 16 * m_tiles
  bool q_in_regs;
  constexpr int block_m() const { return warps * 16 * m_tiles; }
  constexpr int threads() const { return warps * 32; }
  constexpr int smem_bytes() const {
    return (block_m() * head_dim + 4 * block_n * head_dim) * 2 + 2 * block_n * 4;
  }
};

inline constexpr FlashShape kFlashD64{64, 64, 4, 2, true};
inline constexpr FlashShape kFlashD128{128, 32, 4, 2, false};

}  // namespace sieve::attention::cuda
