// Internal: the row kernel of SampleAttention and of the vslash / flexprefill probes (peers_gpu.h:
// row_mass): the exact softmax of 128 listed query rows of one head against 64-key tiles, reduced
// to per-row statistics, column masses or column and diagonal sums. Included by sample.cu (scores
// by mma.sync, any sm_80+ device) and sm90a/row_softmax_wgmma.cu (scores by wgmma with the rows'
// fragments in registers and the key tile read by the tensor cores from shared memory, Hopper):
// the two differ only in how a 128 x 64 score tile is computed and how key tiles are laid out;
// both produce the same accumulator layout, so everything after it is this one code.
#pragma once

#include "block_reduce.cuh"
#include "peers_gpu.h"
#include "sieve/attention/cuda/ptx.cuh"
#include "sieve/attention/cuda/wgmma.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace sieve::attention::cuda::est::rows {

// 64-key tiles; a CTA holds kRows listed rows (a template parameter: 128, two warpgroups, or 64,
// one), one warp per 16 rows.
inline constexpr int kKeys = 64;

/// d (+)= A(registers, the m16n8k16 A layout per warp) * B^T, B: 64 keys x 16 K-major in shared
/// memory (descriptor): wgmma m64n64k16 with f32 accumulators. wgmma.cuh's register-A form reads
/// B transposed (MN-major, for P V); Q K^T needs the key tile as stored (K-major).
template <class T>
__device__ __forceinline__ void wgmma_rs_kmajor(float (&d)[8][4], const uint32_t (&a)[4],
                                                uint64_t db, int scale_d) {
#define SIEVE_ROWS_WGMMA_RS(TYPE)                                                                \
  asm volatile(                                                                                  \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                               \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE                                \
      " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, "  \
      "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, " \
      "%36, p, 1, 1, 0;\n}\n"                                                                    \
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), \
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), \
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), \
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), \
        "+f"(d[7][2]), "+f"(d[7][3])                                                              \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d))
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    SIEVE_ROWS_WGMMA_RS("bf16");
  else
    SIEVE_ROWS_WGMMA_RS("f16");
#undef SIEVE_ROWS_WGMMA_RS
}


// What query row i sees and what counts as covered for it (sample_attention.cpp's take()):
// keys [0, v); covered: the sink block [0, block_k), its query block's diagonal blocks
// [lo_f, hi_f) (forced_blocks without block 0) and the band [lo_b, hi_b).
struct RowInfo {
  int v = 0, lo_f = 0, hi_f = 0, lo_b = 0, hi_b = 0;
};
__device__ inline RowInfo row_info(const Geometry& g, int i, int band) {
  RowInfo r;
  const int p = i + g.q_offset;
  r.v = g.causal ? min(max(p + 1, 0), g.seq_k) : g.seq_k;
  const int qb = i / g.block_q;
  const int nvis = visible_blocks(g, qb);
  if (nvis > 0) {
    const BlockRange d = diagonal_blocks(g, qb, nvis);
    if (d.last >= d.first) {
      r.lo_f = d.first * g.block_k;
      r.hi_f = (d.last + 1) * g.block_k;
    }
  }
  if (band > 0) {
    r.lo_b = p - band + 1;
    r.hi_b = p + 1;
  }
  return r;
}

enum Mode : int { kStats = 0, kSampleMass = 1, kProbeMass = 2 };

// One past the row's last visible key that no covered range holds (0: every visible key is
// covered): walk down from v over the covered ranges that contain the key below (each range at
// most once, since the walk moves below its start).
__device__ inline int noncovered_end(const RowInfo& r, int block_k) {
  int e = r.v;
  for (int it = 0; it < 4 && e > 0; ++it) {
    const int j = e - 1;
    if (j < block_k) return 0;
    if (j >= r.lo_f && j < r.hi_f)
      e = r.lo_f;
    else if (j >= r.lo_b && j < r.hi_b)
      e = r.lo_b;
    else
      return e;
  }
  return e;
}

// Sums of cs[n][c] (column n * 8 + 2 * tq + c of an m16n8 accumulator layout) over the 8 lanes of
// equal tq, written to dst [64]: a butterfly that halves the values held at each of the three
// levels (14 shuffles instead of 48); lane (gr, tq) ends with columns n * 8 + 2 * tq + {0, 1} of
// n = 4 * bit0(gr) + 2 * bit1(gr) + bit2(gr).
__device__ __forceinline__ void warp_column_sums(const float (&cs)[8][2], float* dst, int lane) {
  float v[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) v[i] = cs[i >> 1][i & 1];
  const bool b0 = (lane >> 2) & 1, b1 = (lane >> 3) & 1, b2 = (lane >> 4) & 1;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float send = b0 ? v[i] : v[i + 8];
    const float keep = b0 ? v[i + 8] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, 4);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float send = b1 ? v[i] : v[i + 4];
    const float keep = b1 ? v[i + 4] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float send = b2 ? v[i] : v[i + 2];
    const float keep = b2 ? v[i + 2] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
  }
  const int n = (b0 ? 4 : 0) + (b1 ? 2 : 0) + (b2 ? 1 : 0), tq = lane & 3;
  dst[n * 8 + 2 * tq] = v[0];
  dst[n * 8 + 2 * tq + 1] = v[1];
}

// warp_column_sums through shared memory (kLean, sample mode, D 128): each lane stores its 16 sums
// at buf[gr * 72 + column] (rows padded to 72 floats: conflict-free float2 stores and loads at
// constant offsets, 2304 bytes per warp), then lane l adds the 8 row groups of columns 2 l and
// 2 l + 1 in the butterfly's tree (pairs over gr bit 0, then bit 1, then bit 2), so each sum is the
// same f32 value: 8 stores, 8 loads and 14 adds instead of 14 shuffles, 28 selects and 14 adds.
inline constexpr int kStageStride = 72;
__device__ __forceinline__ void warp_column_sums_staged(const float (&cs)[8][2], float* buf,
                                                        float* dst, int lane) {
  const int gr = lane >> 2, tq = lane & 3;
  float* const w = buf + gr * kStageStride + 2 * tq;
#pragma unroll
  for (int n = 0; n < 8; ++n)
    *reinterpret_cast<float2*>(w + 8 * n) = make_float2(cs[n][0], cs[n][1]);
  __syncwarp();
  float2 r[8];
  const float* const rd = buf + 2 * lane;
#pragma unroll
  for (int g = 0; g < 8; ++g) r[g] = *reinterpret_cast<const float2*>(rd + g * kStageStride);
  const float x =
      ((r[0].x + r[1].x) + (r[2].x + r[3].x)) + ((r[4].x + r[5].x) + (r[6].x + r[7].x));
  const float y =
      ((r[0].y + r[1].y) + (r[2].y + r[3].y)) + ((r[4].y + r[5].y) + (r[6].y + r[7].y));
  *reinterpret_cast<float2*>(dst + 2 * lane) = make_float2(x, y);
}

// One CTA = 128 listed rows of query head blockIdx.y against the keys of split blockIdx.x that
// any of them sees, 64 keys per step (cp.async double buffer, XOR-swizzled rows: 16-byte chunk c
// of row r at c ^ (r & 7)). With kWgmma the key tiles are stored as 64-element panels of 128-byte
// rows (the 128-byte-swizzle layout wgmma reads) and each warpgroup scores its 64 rows in one
// m64n64 group, the rows' fragments from registers (as for mma.sync), the keys from shared memory.
// One CTA barrier per tile (it also publishes the previous tile's shared sums, flushed after it).
// Scores are kept in log2 units (scale * log2 e folded into the fma that subtracts the row max) so
// that every probability is one fma and one ex2.approx (~2 ulp), and tiles that lie wholly inside
// the row's visible keys and wholly inside or outside its covered ranges skip the per-key tests.
//  - kStats: per (row, split) the max and sum of 2^(s - max) (online) into part_m / part_l;
//  - kSampleMass: the probabilities (row max and 1 / sum from row_max / row_inv), split into the
//    covered mass (per head) and column mass (f64 atomics). With pb.skip_covered (the default)
//    the CTA visits only the key tiles from the first one past the sink block to the last one
//    that holds a non-covered key of one of its rows (at 32K sample's band alone is ~15 % of a
//    row's keys), and its covered mass is its counted rows minus the column mass it added (every
//    row's probabilities add up to 1, to f32 rounding);
//  - kProbeMass: every probability to its column and to its diagonal offset pos(i) - j
//    (probe_last_rows; the listed rows are consecutive, so a tile's offsets span < 192 values;
//    each warp sums its tile's diagonals from the probabilities staged in shared memory).
// kLean (wgmma only; the default on Hopper, SIEVE_ROWS_EPI=default selects the other) is the same
// arithmetic with fewer instructions per tile: key descriptors by one add from a precomputed one,
// interior key tiles copied from a running pointer without bounds selects; where both of a thread's
// rows see the whole tile (and, for sample's mass, both lie wholly outside or wholly inside the
// covered ranges) the two rows' epilogues interleaved, with max trees and sums that start at their
// first term (0 + x == x for every x >= +0 the sums see); sample's per-warp column sums (D 128)
// through shared memory in the butterfly's tree. Every f32 / f64 value is produced by the same
// operations in the same order as without kLean (max is exact in any order).
// kRows (64 or 128) listed rows a CTA, 2 kRows threads; the bound keeps <= 128 registers (2 CTAs
// an SM at 128 rows, 4 at 64).
template <class T, int D, int kMode, bool kWgmma, bool kLean = false, int kRows = 128>
__global__ void __launch_bounds__(2 * kRows, 256 / kRows)
    row_softmax_kernel(HeadInputs in, Geometry g, RowProblem pb, int split_tiles,
                       const float* row_max, const float* row_inv, float* part_m, double* part_l) {
  static_assert(kRows == 64 || kRows == 128, "64 or 128 listed rows a CTA");
  constexpr int kThreads = 2 * kRows;
  constexpr int kRowBytes = 2 * D, kChunks = D / 8, kSteps = D / 16, kSlash = kRows + 2 * kKeys;
  extern __shared__ __align__(128) unsigned char smem[];
  // per-warp column sums and (probe) diagonal sums of the last two tiles (tile i's are flushed to
  // global memory after the barrier that starts tile i + 1: one barrier per tile)
  constexpr int kDiag = 16 + kKeys - 1;  // diagonals of a warp's 16 x 64 tile
  __shared__ float s_col[2][kThreads / 32][kKeys];
  __shared__ float s_diag[2][kMode == kProbeMass ? kThreads / 32 : 1][kDiag];
  __shared__ int s_v[kRows];
  __shared__ int s_e[kRows];  // skip: noncovered_end of each row
  __shared__ double s_red[32];
  const uint32_t raw = ptx::smem_addr(smem);
  const uint32_t s_q = kWgmma ? (raw + 1023u) & ~1023u : raw;  // swizzle atoms: 1024-byte aligned
  const uint32_t s_k = s_q + uint32_t(kRows * kRowBytes);
  const int h = int(blockIdx.y), hk = h / in.group, split = int(blockIdx.x),
            splits = int(gridDim.x);
  // Row tiles are the slowest grid dimension, the last (most keys) first: every head's and split's
  // longest CTAs start in the first wave, the short ones fill the tail.
  const int t0 = (int(gridDim.z) - 1 - int(blockIdx.z)) * kRows;
  const bool skip = kMode == kSampleMass && pb.skip_covered;
  const int n_rows = pb.n_rows;
  const int* rows = pb.rows;
  const T* q = static_cast<const T*>(in.q) + int64_t(h) * in.q_head_stride;
  const T* k = static_cast<const T*>(in.k) + int64_t(hk) * in.k_head_stride;
  for (int i = int(threadIdx.x); i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    const bool ok = t0 + r < n_rows;
    const T* src = ok ? q + int64_t(rows[t0 + r]) * in.q_row_stride + c * 8 : q;
    ptx::cp_async_16(s_q + uint32_t((r * kChunks + (c ^ (r & 7))) * 16), src, ok);
  }
  if (threadIdx.x < kRows) {
    const int t = t0 + int(threadIdx.x);
    const RowInfo r = t < n_rows ? row_info(g, rows[t], pb.band) : RowInfo{};
    s_v[threadIdx.x] = r.v;
    s_e[threadIdx.x] = skip ? noncovered_end(r, g.block_k) : r.v;
  }
  __syncthreads();
  int maxv = 0, nrows = 0;  // (skip: the last tile any row needs)
  for (int i = 0; i < kRows; ++i) {
    maxv = max(maxv, s_e[i]);
    nrows += s_v[i] > 0 ? 1 : 0;
  }
  // skip: the tiles wholly inside the sink block [0, block_k) are covered for every row
  const int tile0 = max(split * split_tiles, skip ? g.block_k / kKeys : 0);
  const int ntiles =
      max(0, min((maxv + kKeys - 1) / kKeys, split * split_tiles + split_tiles) - tile0);
  // Key tile copy: this thread's 16-byte chunk cc of rows kr + u * kRowStep (u < kCopies). The
  // row step is a multiple of 8, so every copy has the same swizzle and the shared-memory offsets
  // and global addresses differ by constants: no per-tile index arithmetic.
  constexpr int kRowStep = kThreads / kChunks, kCopies = kKeys / kRowStep;
  static_assert(kRowStep % 8 == 0 && kKeys % kRowStep == 0, "key tile copy");
  const int kr = int(threadIdx.x) / kChunks, cc = int(threadIdx.x) % kChunks;
  const uint32_t k_off =
      kWgmma ? uint32_t((cc >> 3) * (kKeys * 128) + kr * 128 + (((cc & 7) ^ (kr & 7)) << 4))
             : uint32_t((kr * kChunks + (cc ^ (kr & 7))) * 16);
  constexpr uint32_t kOffStep = kWgmma ? kRowStep * 128 : kRowStep * kChunks * 16;
  const T* k_src = k + int64_t(kr) * in.k_row_stride + cc * 8;
  const int64_t k_step = int64_t(kRowStep) * in.k_row_stride;
  // kLean: the tiles are loaded in order tile0, tile0 + 1, ...: a running source pointer
  [[maybe_unused]] const int64_t k_tile = int64_t(kKeys) * in.k_row_stride;
  [[maybe_unused]] const T* k_next = k_src + int64_t(tile0) * k_tile;
  const auto load_keys = [&](int kt, uint32_t dst) {
    const T* src = kLean ? k_next : k_src + int64_t(kt) * kKeys * in.k_row_stride;
    if constexpr (kLean) k_next += k_tile;
    if (kLean && (kt + 1) * kKeys <= g.seq_k) {  // interior tile: every row in bounds
#pragma unroll
      for (int u = 0; u < kCopies; ++u)
        ptx::cp_async_16(dst + k_off + uint32_t(u) * kOffStep, src + u * k_step, true);
      return;
    }
    const int j = kt * kKeys + kr;
#pragma unroll
    for (int u = 0; u < kCopies; ++u) {
      const bool ok = j + u * kRowStep < g.seq_k;
      ptx::cp_async_16(dst + k_off + uint32_t(u) * kOffStep, ok ? src + u * k_step : k, ok);
    }
  };
  if (ntiles > 0) load_keys(tile0, s_k);
  ptx::cp_async_commit();
  ptx::cp_async_wait<0>();
  if constexpr (kWgmma) wgmma::fence_proxy_async();
  __syncthreads();

  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int gr = lane >> 2, tq = lane & 3;
  // this thread's rows: warp * 16 + gr and + 8
  int trow[2], tpos[2];
  RowInfo ri[2];
  float m[2], inv[2];
  double l[2] = {0.0, 0.0}, cov[2] = {0.0, 0.0};
  for (int rr = 0; rr < 2; ++rr) {
    const int local = warp * 16 + gr + rr * 8;
    trow[rr] = t0 + local;
    const bool ok = trow[rr] < n_rows;
    ri[rr] = ok ? row_info(g, rows[trow[rr]], pb.band) : RowInfo{};
    tpos[rr] = ok ? rows[trow[rr]] + g.q_offset : 0;
    m[rr] = -INFINITY;
    inv[rr] = 0.f;
    if (kMode != kStats && ok) {
      m[rr] = row_max[int64_t(h) * n_rows + trow[rr]];
      inv[rr] = row_inv[int64_t(h) * n_rows + trow[rr]];
    }
  }
  // smallest listed position of the tile (probe mode: offsets are relative to it)
  const int pos_lo = rows[min(t0, n_rows - 1)] + g.q_offset;
  // A fragments of the warp's 16 rows for every k step, kept in registers.
  uint32_t a[kSteps][4];
  {
    const int ar = lane & 15;
    const uint32_t a_off = uint32_t((warp * 16 + ar) * kRowBytes + 16 * ((lane >> 4) ^ (ar & 7)));
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk) ptx::ldmatrix_x4(s_q + (a_off ^ uint32_t(32 * kk)), a[kk]);
  }
  const int br = (lane & 7) + ((lane >> 4) << 3);
  [[maybe_unused]] const uint32_t b_off =
      uint32_t(br * kRowBytes + 16 * (((lane >> 3) & 1) ^ (br & 7)));
  // scores in log2 units (scale * log2 e folded in): one ex2 per probability
  const float scale2 = in.scale * 1.4426950408889634f;
  // kLean: the key tiles' descriptors by a 32-bit add of offset >> 4 to the low word of this one
  // (the high word is constant): shared addresses are < 2^18 and 16-byte multiples, so the 14-bit
  // start field never carries (desc_sw128 masks the same bits)
  [[maybe_unused]] const uint64_t desc_base = wgmma::desc_sw128(s_k, 16, 1024);
  [[maybe_unused]] const uint32_t desc_hi = uint32_t(desc_base >> 32);
  double* hcol = pb.col + int64_t(h) * g.seq_k;
  double* hslash = kMode == kProbeMass ? pb.slash + int64_t(h) * g.seq_k : nullptr;
  // Probe mode: each warp's 16 x 64 probabilities of the current tile (row stride 64 floats,
  // 8-float groups XOR-swizzled by row & 3: conflict-free float2 stores and diagonal loads). With
  // D = 128 this is the warp's own rows of the query tile, dead once its fragments are in registers;
  // otherwise launch_row_kernel adds the space after the key buffers.
  [[maybe_unused]] float* const s_pw = reinterpret_cast<float*>(
      smem + ((D == 128 ? s_q : s_k + 2u * kKeys * kRowBytes) - raw) + warp * 16 * kKeys * 4);
  // kLean, sample mode, D 128: the warp's own rows of the query tile (dead once its fragments are
  // in registers, 4 KiB) stage its column sums (warp_column_sums_staged)
  [[maybe_unused]] float* const s_cs =
      reinterpret_cast<float*>(smem + (s_q - raw) + warp * 16 * kRowBytes);
  static_assert(D != 128 || 8 * kStageStride * 4 <= 16 * kRowBytes, "staged column sums");
  // Tile i's column sums over the CTA's warps (f64 atomics) and, in probe mode, its diagonal sums;
  // called after a barrier that follows every warp's writes of tile i. ncv: this thread's share
  // of the CTA's column mass (skip: subtracted from its counted rows for the covered mass).
  double ncv = 0.0;
  const auto flush = [&](int i) {
    const int b = i & 1, jt = (tile0 + i) * kKeys;
    if (threadIdx.x < kKeys) {
      float x = 0.f;
      for (int w = 0; w < kThreads / 32; ++w) x += s_col[b][w][threadIdx.x];
      const int j = jt + int(threadIdx.x);
      if (x > 0.f && j < g.seq_k) {
        atomicAdd(hcol + j, double(x));
        ncv += double(x);
      }
    }
    if (kMode == kProbeMass) {
      // tile slot x = (row - pos_lo) - key + 63 is warp w's local diagonal x - 16 w
      for (int x = int(threadIdx.x); x < kSlash; x += kThreads) {
        float v = 0.f;
        for (int w = 0; w < kThreads / 32; ++w) {
          const int d = x - 16 * w;
          if (d >= 0 && d < kDiag) v += s_diag[b][kMode == kProbeMass ? w : 0][d];
        }
        const int o = x + pos_lo - jt - (kKeys - 1);
        if (v > 0.f && o >= 0 && o < g.seq_k) atomicAdd(hslash + o, double(v));
      }
    }
  };

  // One barrier per tile: it publishes tile i's keys (copied during tile i - 1) and tile i - 1's
  // shared sums, and frees the buffer of tile i - 1 for the copy of tile i + 1.
  for (int i = 0; i < ntiles; ++i) {
    if (i > 0) {
      ptx::cp_async_wait<0>();
      if constexpr (kWgmma) wgmma::fence_proxy_async();
      __syncthreads();
      if (kMode != kStats) flush(i - 1);
    }
    if (i + 1 < ntiles) load_keys(tile0 + i + 1, s_k + uint32_t(((i + 1) & 1) * kKeys * kRowBytes));
    ptx::cp_async_commit();
    const uint32_t sb = s_k + uint32_t((i & 1) * kKeys * kRowBytes);
    float acc[8][4] = {};
    if constexpr (kWgmma) {
      wgmma::fence();
      [[maybe_unused]] const uint32_t desc_lo =
          uint32_t(desc_base) + (uint32_t((i & 1) * kKeys * kRowBytes) >> 4);
#pragma unroll
      for (int kk = 0; kk < kSteps; ++kk) {
        const uint32_t off = uint32_t((kk >> 2) * (kKeys * 128) + (kk & 3) * 32);
        const uint64_t db = kLean ? (uint64_t(desc_hi) << 32) | (desc_lo + (off >> 4))
                                  : wgmma::desc_sw128(sb + off, 16, 1024);
        wgmma_rs_kmajor<T>(acc, a[kk], db, kk > 0 ? 1 : 0);
      }
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::fence_operands(acc);
    } else {
#pragma unroll
      for (int kk = 0; kk < kSteps; ++kk) {
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          ptx::ldmatrix_x4(sb + ((b_off + uint32_t(np * 16 * kRowBytes)) ^ uint32_t(32 * kk)), b);
          ptx::mma_16816<T>(acc[2 * np], a[kk], b[0], b[1]);
          ptx::mma_16816<T>(acc[2 * np + 1], a[kk], b[2], b[3]);
        }
      }
    }
    const int jt = (tile0 + i) * kKeys;
    const int j0 = jt + 2 * tq;  // + n * 8 + c
    // kLean, both rows seeing the whole tile: the statistics of the two rows interleaved
    // (independent chains), each exactly as the per-row code below computes it.
    if constexpr (kLean && kMode == kStats) {
      if (jt + kKeys <= min(ri[0].v, ri[1].v)) {
        float t[2];
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          float x[8];
#pragma unroll
          for (int n = 0; n < 8; ++n) x[n] = fmaxf(acc[n][2 * rr], acc[n][2 * rr + 1]);
#pragma unroll
          for (int w = 4; w > 0; w >>= 1)
#pragma unroll
            for (int n = 0; n < w; ++n) x[n] = fmaxf(x[n], x[n + w]);
          t[rr] = x[0];
        }
        // (a row tile of NaN scores: the tree gives NaN where the per-row chain from -inf gives
        // -inf and skips the row; such tiles take the per-row code)
        if (t[0] > -INFINITY && t[1] > -INFINITY) {
#pragma unroll
          for (int rr = 0; rr < 2; ++rr) {
            const float tmax = t[rr] * scale2;
            if (tmax > m[rr]) {
              if (m[rr] != -INFINITY) l[rr] *= double(ptx::exp2_fast(m[rr] - tmax));
              m[rr] = tmax;
            }
          }
          const float nm0 = -m[0], nm1 = -m[1];
          float s00 = ptx::exp2_fast(fmaf(scale2, acc[0][0], nm0));
          float s01 = ptx::exp2_fast(fmaf(scale2, acc[0][1], nm0));
          float s10 = ptx::exp2_fast(fmaf(scale2, acc[0][2], nm1));
          float s11 = ptx::exp2_fast(fmaf(scale2, acc[0][3], nm1));
#pragma unroll
          for (int n = 1; n < 8; ++n) {
            s00 += ptx::exp2_fast(fmaf(scale2, acc[n][0], nm0));
            s01 += ptx::exp2_fast(fmaf(scale2, acc[n][1], nm0));
            s10 += ptx::exp2_fast(fmaf(scale2, acc[n][2], nm1));
            s11 += ptx::exp2_fast(fmaf(scale2, acc[n][3], nm1));
          }
          l[0] += double(s00 + s01);
          l[1] += double(s10 + s11);
          continue;
        }
      }
    }
    if constexpr (kMode == kStats) {
      // The max of the raw scores times scale2 (> 0: effective_scale) is the max of the scaled
      // ones (rounding is monotonic); each term is then one fma and one ex2, as in the mass pass.
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        float tmax = -INFINITY;
        if (jt + kKeys <= ri[rr].v) {  // every key of the tile visible to the row
#pragma unroll
          for (int n = 0; n < 8; ++n)
            tmax = fmaxf(tmax, fmaxf(acc[n][2 * rr], acc[n][2 * rr + 1]));
        } else {
#pragma unroll
          for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const float s = j0 + n * 8 + c < ri[rr].v ? acc[n][2 * rr + c] : -INFINITY;
              acc[n][2 * rr + c] = s;
              tmax = fmaxf(tmax, s);
            }
        }
        if (tmax == -INFINITY) continue;
        tmax *= scale2;
        if (tmax > m[rr]) {
          if (m[rr] != -INFINITY) l[rr] *= double(ptx::exp2_fast(m[rr] - tmax));
          m[rr] = tmax;
        }
        const float nm = -m[rr];
        float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
          sum0 += ptx::exp2_fast(fmaf(scale2, acc[n][2 * rr], nm));
          sum1 += ptx::exp2_fast(fmaf(scale2, acc[n][2 * rr + 1], nm));
        }
        l[rr] += double(sum0 + sum1);
      }
    } else {
      float cs[8][2] = {};
      float cv[2] = {0.f, 0.f};
      // kLean, both rows seeing the whole tile and both wholly outside (inside) the covered
      // ranges: the two rows' probabilities interleaved into the column (covered) sums with the
      // operations the per-row loop below compiles to (nvcc contracts `sum += e * ir` into
      // fma(e, ir, sum), and fma(e, ir, +0) == e * ir for e, ir >= +0), written out as fmaf:
      // cs = fma(e1, ir1, e0 * ir0), t = fma(e15, ir, ... fma(e1, ir, e0 * ir)). The equality
      // tests (GpuPeerSelectors.FastRowEpilogue*) guard this against another compiler.
      int lean = 0;  // 1: both outside, 2: both inside, 0: per-row code
      if constexpr (kLean && kMode == kSampleMass) {
        const int je = jt + kKeys;
        bool out2 = je <= min(ri[0].v, ri[1].v) && jt >= g.block_k, in2 = out2 || je <= g.block_k;
        in2 = je <= min(ri[0].v, ri[1].v) && in2;
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          const RowInfo& r = ri[rr];
          out2 = out2 && (je <= r.lo_f || jt >= r.hi_f) && (je <= r.lo_b || jt >= r.hi_b);
          in2 = in2 && (je <= g.block_k || (jt >= r.lo_f && je <= r.hi_f) ||
                        (jt >= r.lo_b && je <= r.hi_b));
        }
        lean = out2 ? 1 : in2 ? 2 : 0;
        const float nm0 = -m[0], nm1 = -m[1], ir0 = inv[0], ir1 = inv[1];
        if (lean == 1) {
#pragma unroll
          for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int c = 0; c < 2; ++c)
              cs[n][c] = fmaf(ptx::exp2_fast(fmaf(scale2, acc[n][2 + c], nm1)), ir1,
                              ptx::exp2_fast(fmaf(scale2, acc[n][c], nm0)) * ir0);
        } else if (lean == 2 && !skip) {  // (skip: covered mass by difference)
          float t0 = ptx::exp2_fast(fmaf(scale2, acc[0][0], nm0)) * ir0;
          float t1 = ptx::exp2_fast(fmaf(scale2, acc[0][2], nm1)) * ir1;
#pragma unroll
          for (int e = 1; e < 16; ++e) {
            const int n = e >> 1, c = e & 1;
            t0 = fmaf(ptx::exp2_fast(fmaf(scale2, acc[n][c], nm0)), ir0, t0);
            t1 = fmaf(ptx::exp2_fast(fmaf(scale2, acc[n][2 + c], nm1)), ir1, t1);
          }
          cov[0] += double(t0);
          cov[1] += double(t1);
        }
      }
#pragma unroll
      for (int rr = 0; lean == 0 && rr < 2; ++rr) {
        const RowInfo& r = ri[rr];
        const int je = jt + kKeys;
        // Where the whole tile lies for this row: fully visible, and (sample) fully outside or
        // fully inside one covered range; only the other tiles test every key.
        const bool full = je <= r.v;
        const bool outside =
            jt >= g.block_k && (je <= r.lo_f || jt >= r.hi_f) && (je <= r.lo_b || jt >= r.hi_b);
        const bool inside =
            je <= g.block_k || (jt >= r.lo_f && je <= r.hi_f) || (jt >= r.lo_b && je <= r.hi_b);
        const float mr = m[rr], ir = inv[rr];
        if (kMode == kSampleMass && full && outside) {
#pragma unroll
          for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int c = 0; c < 2; ++c)
              cs[n][c] += ptx::exp2_fast(fmaf(scale2, acc[n][2 * rr + c], -mr)) * ir;
        } else if (kMode == kSampleMass && full && inside) {
          if (skip) continue;  // covered mass by difference
          float t = 0.f;
#pragma unroll
          for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int c = 0; c < 2; ++c)
              t += ptx::exp2_fast(fmaf(scale2, acc[n][2 * rr + c], -mr)) * ir;
          cv[rr] += t;
        } else if (kMode == kSampleMass) {
#pragma unroll
          for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const int j = j0 + n * 8 + c;
              if (j >= r.v) continue;
              const float p = ptx::exp2_fast(fmaf(scale2, acc[n][2 * rr + c], -mr)) * ir;
              const bool is_cov =
                  j < g.block_k || (j >= r.lo_f && j < r.hi_f) || (j >= r.lo_b && j < r.hi_b);
              if (is_cov)
                cv[rr] += p;
              else
                cs[n][c] += p;
            }
        }
        if constexpr (kMode == kProbeMass) {
          // every visible probability to its column; those at offsets pos - j >= 0 (zero
          // elsewhere) into the warp's staged tile
          const int row = gr + 8 * rr;
#pragma unroll
          for (int n = 0; n < 8; ++n) {
            float pv[2];
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const int j = j0 + n * 8 + c;
              const float p =
                  full || j < r.v ? ptx::exp2_fast(fmaf(scale2, acc[n][2 * rr + c], -mr)) * ir : 0.f;
              cs[n][c] += p;
              pv[c] = j <= tpos[rr] ? p : 0.f;
            }
            *reinterpret_cast<float2*>(s_pw + row * kKeys + ((8 * n + 2 * tq) ^ (8 * (row & 3)))) =
                make_float2(pv[0], pv[1]);
          }
        }
        cov[rr] += double(cv[rr]);
      }
      if constexpr (kMode == kProbeMass) {
        // Diagonal sums of the warp's 16 x 64 tile (local diagonal d = row - key + 63) from its
        // staged probabilities: plain loads and adds instead of shared float atomics (a CAS loop
        // on sm_90) per probability.
        __syncwarp();
        for (int d = lane; d < kDiag; d += 32) {
          float v = 0.f;
          for (int row = max(0, d - (kKeys - 1)); row <= min(15, d); ++row)
            v += s_pw[row * kKeys + ((row + kKeys - 1 - d) ^ (8 * (row & 3)))];
          s_diag[i & 1][warp][d] = v;
        }
        __syncwarp();
      }
      // column sums over the warp's 16 rows (lanes of equal tq); over the CTA's warps in flush()
      if constexpr (kLean && kMode == kSampleMass && D == 128)
        warp_column_sums_staged(cs, s_cs, s_col[i & 1][warp], lane);
      else
        warp_column_sums(cs, s_col[i & 1][warp], lane);
    }
  }
  if (kMode != kStats && ntiles > 0) {
    __syncthreads();
    flush(ntiles - 1);
  }

  if constexpr (kMode == kStats) {
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mm = m[rr];
      mm = fmaxf(mm, __shfl_xor_sync(0xffffffffu, mm, 1));
      mm = fmaxf(mm, __shfl_xor_sync(0xffffffffu, mm, 2));
      double ll = m[rr] == -INFINITY ? 0.0 : l[rr] * exp2(double(m[rr]) - double(mm));
      ll += __shfl_xor_sync(0xffffffffu, ll, 1);
      ll += __shfl_xor_sync(0xffffffffu, ll, 2);
      if (tq == 0 && trow[rr] < n_rows) {
        const int64_t at = (int64_t(h) * n_rows + trow[rr]) * splits + split;
        part_m[at] = mm;
        part_l[at] = ll;
      }
    }
  } else if constexpr (kMode == kSampleMass) {
    // skip: counted rows (once per row tile, by split 0) minus the column mass of this CTA
    const double c = skip ? (split == 0 ? double(nrows) : 0.0) - block_sum(ncv, s_red)
                          : block_sum(cov[0] + cov[1], s_red);
    if (threadIdx.x == 0) {
      if (skip ? c != 0.0 : c > 0.0) atomicAdd(pb.covered + h, c);
      if (split == 0) atomicAdd(pb.counted + h, double(nrows));
    }
  }
}

/// row_softmax_kernel on grid (splits, heads, row tiles); its dynamic shared memory holds the
/// rows and two key tiles (kWgmma: +1024 bytes to align the key tiles' swizzle atoms; probe mode
/// with D != 128: + the staged probability tiles).
template <class T, int D, int kMode, bool kWgmma, bool kLean = false, int kRows = 128>
cudaError_t launch_row_kernel(const HeadInputs& in, const Geometry& g, const RowProblem& pb,
                              int split_tiles, int splits, const float* row_max,
                              const float* row_inv, float* part_m, double* part_l,
                              cudaStream_t stream) {
  // probe mode with D != 128: + the warps' staged probability tiles (row_softmax_kernel)
  const int smem = (kRows + 2 * kKeys) * 2 * D + (kWgmma ? 1024 : 0) +
                   (kMode == kProbeMass && D != 128 ? kRows * kKeys * 4 : 0);
  auto* kernel = &row_softmax_kernel<T, D, kMode, kWgmma, kLean, kRows>;
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const int row_tiles = (pb.n_rows + kRows - 1) / kRows;
  if (row_tiles > 65535) return cudaErrorInvalidConfiguration;  // grid z limit (~8M listed rows)
  const dim3 grid(unsigned(splits), unsigned(in.heads_q), unsigned(row_tiles));
  kernel<<<grid, 2 * kRows, size_t(smem), stream>>>(in, g, pb, split_tiles, row_max, row_inv,
                                                     part_m, part_l);
  return cudaGetLastError();
}

/// The Hopper instantiation (sm90a/row_softmax_wgmma.cu): kernel mode (kStats, kSampleMass,
/// kProbeMass) of row_softmax_kernel<T, D, mode, true, lean, cta_rows> (launch_row_kernel);
/// cta_rows 64 or 128 (kSampleMass: 128 only).
cudaError_t launch_rows_wgmma(int mode, bool lean, int cta_rows, const HeadInputs& in,
                              const Geometry& g,
                              const RowProblem& pb, int split_tiles, int splits,
                              const float* row_max, const float* row_inv, float* part_m,
                              double* part_l, cudaStream_t stream);

}  // namespace sieve::attention::cuda::est::rows
