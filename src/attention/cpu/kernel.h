// Internal contract between the CPU executors (tile_runner.cpp) and the SIMD kernels
// (kernel_{scalar,avx2,avx512}.cpp): one call processes one chunk of at most kChunkKeys keys for
// one query tile of at most kTileRows rows, FlashAttention-2 style.
//
// Layouts (all f32 unless noted; "ld" = leading dimension in elements):
//   qp    query tile, transposed into panels of `panel` rows: [rows_pad/panel][D][panel], already
//         multiplied by scale*log2(e); for the bf16 dot-product path instead bf16 pairs
//         [rows_pad/panel][D/2][panel][2] of the raw (unscaled) queries.
//   s     scores, then probabilities, transposed: [kChunkKeys][kScoreLd] (key-major, rows as lanes),
//         in the log2 domain (scale*log2(e) folded in).
//   o     unnormalised output accumulator [kTileRows][D + kRowPad].
//   m, l  running row max (log2 domain) and row sum; alpha the last rescale factor. [kTileRows]
//   kc,vc the chunk's keys/values converted to f32 (kc: bf16 on the dot-product path), [n][D + kRowPad].
// The executors own the scratch, the Q packing, the final normalisation and every check; the
// kernels only do arithmetic on validated buffers.
#pragma once

#include <cstdint>

#include "sieve/core/dtype.h"

namespace sieve::attention::cpu {

inline constexpr int kTileRows = 128;    // Br: query rows per tile
inline constexpr int kChunkKeys = 64;    // Bc: keys per chunk
inline constexpr int kScoreLd = kTileRows + 16;  // padded so key rows do not alias in L1
inline constexpr int kRowPad = 16;       // padding of D-long rows, same reason

struct TileScratch {
  void* qp = nullptr;
  float* s = nullptr;
  float* o = nullptr;
  float* m = nullptr;
  float* l = nullptr;
  float* alpha = nullptr;
  void* kc = nullptr;
  float* vc = nullptr;
};

struct TileInfo {
  int rows = 0;       // valid query rows in the tile (<= kTileRows)
  int rows_pad = 0;   // rows rounded up to the kernel's panel width
  int64_t head_dim = 0;
  float score_scale = 1.0f;  // multiplies raw q.k on the bf16 dot-product path (scale*log2 e)
};

/// The KV head a tile reads: element (j, d) of k is k[j * k_row_stride + d].
struct KvInfo {
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t k_row_stride = 0, v_row_stride = 0;
  DType dtype = DType::kF32;
};

/// One chunk: n keys (absolute indices); when lo/hi are set, key t is kept only for tile rows
/// r with lo[t] <= r < hi[t] (causal, band and column masks all reduce to this interval).
struct ChunkKeys {
  int n = 0;
  const int32_t* keys = nullptr;
  const int32_t* lo = nullptr;
  const int32_t* hi = nullptr;
};

using ChunkFn = void (*)(const TileInfo&, const TileScratch&, const KvInfo&, const ChunkKeys&);

struct KernelOps {
  const char* name = "";
  int width = 1;          // SIMD lanes; head_dim must be a multiple
  int panel = 1;          // query rows per S micro-kernel panel
  bool q_bf16_pairs = false;  // qp/kc hold bf16 pairs (AVX512-BF16 dot products)
  ChunkFn chunk = nullptr;
};

// Each returns nullptr when the ISA variant was not compiled in. `bf16_pairs` selects the
// dot-product variant (only the AVX-512 and the emulated wide variants have one).
const KernelOps* scalar_ops();
const KernelOps* avx2_ops();
const KernelOps* avx2_wide_ops(bool bf16_pairs);  // 16 lanes from two AVX2 registers: a test aid
const KernelOps* avx512_ops(bool bf16_pairs);

/// The variant for this dtype and head_dim under the current ISA choice (dispatch.cpp): the
/// chosen ISA when head_dim is a multiple of its width, else the next narrower one.
const KernelOps& select_ops(DType dtype, int64_t head_dim);

}  // namespace sieve::attention::cpu
