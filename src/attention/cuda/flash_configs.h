// The tile shapes the library instantiates (one per head dim; bf16 and f16 share them).
// Chosen by the tile-shape sweep of bench/gpu/bench_attention_cuda on an H200 (dense bf16 d=128,
// 32K: mma.sync 32x4w 270 TFLOP/s; wgmma BLOCK_N 128 one CTA/SM 343, BLOCK_N 64 two CTAs/SM 383;
// see docs/results/gpu-attention.md). A plain header so that host code (pattern checks,
// kernel_info) sees them without CUDA types.
#pragma once

namespace sieve::attention::cuda {

struct FlashShape {
  int head_dim, block_n, warps, m_tiles;  // block_m = warps * 16 * m_tiles
  bool q_in_regs;
  constexpr int block_m() const { return warps * 16 * m_tiles; }
  constexpr int threads() const { return warps * 32; }
  constexpr int smem_bytes() const {
    return (block_m() * head_dim + 4 * block_n * head_dim) * 2 + (2 * block_n + 2) * 4;
  }
};

inline constexpr FlashShape kFlashD64{64, 64, 4, 2, true};
inline constexpr FlashShape kFlashD128{128, 32, 4, 2, false};

}  // namespace sieve::attention::cuda

namespace sieve::attention::cuda {

/// Tile shapes of the Hopper (wgmma) kernel: BLOCK_M = 128 (two warpgroups), BLOCK_N keys.
struct FlashShapeSm90 {
  int head_dim, block_n, min_blocks;
  constexpr int block_m() const { return 128; }
  constexpr int threads() const { return 256; }
  constexpr int smem_bytes() const {
    return 1024 + (128 * head_dim + 4 * block_n * head_dim) * 2 + (2 * block_n + 2) * 4;
  }
};

inline constexpr FlashShapeSm90 kSm90D64{64, 128, 2};
inline constexpr FlashShapeSm90 kSm90D128{128, 64, 2};

/// Tile shape of the warp-specialised Hopper kernel (flash_kernel_fa3.cuh): BLOCK_M = 128 (two
/// consumer warpgroups), a producer warpgroup, `stages` K/V stages, one CTA per SM; head dim 128.
/// Ping-pong scheduling and three stages measured within noise of this (commit d1fc33f).
struct FlashShapeFa3 {
  int head_dim, block_n, stages;
  constexpr int block_m() const { return 128; }
  constexpr int threads() const { return 384; }
  /// Key blocks of the grid kernel's shared bitmap of the CSR row (staged token columns).
  static constexpr int bitmap_words = 256;
  /// Two Q buffers (a grid CTA may own several work tiles), the K/V stages, the barriers (full and
  /// empty per Q buffer and per K/V stage) and the stages' tile slots.
  constexpr int smem_base() const {
    return 1024 + (2 * 128 * head_dim + 2 * stages * block_n * head_dim) * 2 +
           8 * (4 + 4 * stages) + 8 * stages;
  }
  /// The grid kernel adds the bitmap of the work tile's computed key blocks (staged columns).
  constexpr int smem_bytes() const { return smem_base() + 4 * bitmap_words; }
  /// The instance for token columns adds each stage's column key ids and no-mask flag instead.
  constexpr int smem_bytes_columns() const { return smem_base() + stages * (4 * block_n + 4); }
};

inline constexpr FlashShapeFa3 kFa3D128{128, 128, 2};

}  // namespace sieve::attention::cuda
