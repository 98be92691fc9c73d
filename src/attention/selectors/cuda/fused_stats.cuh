// Internal: the parts of the fused tensor-core statistics kernel (estimation_gpu.h: mma_fused)
// shared by its two instances: mma.sync (estimation.cu, sm_80+) and wgmma (sm90a/, Hopper only).
// Both walk (64-unit key tile, representative slot) steps for 4 warps x 16 representative rows
// per CTA and hold the rows' bf16 fragments in registers; they differ only in how a step's
// products are computed (per-warp ldmatrix + mma.sync, or one warpgroup wgmma reading the key
// tile from shared memory once). The score finish and the per (row, group) running max / sum of
// exp are this header's fused_epilogue, so both instances compute the same values.
#pragma once

#include "estimation_gpu.h"
#include "group_stat.cuh"
#include "sieve/attention/cuda/ptx.cuh"

#include <cuda_bf16.h>

#include <cfloat>
#include <cmath>
#include <cstdint>

namespace sieve::attention::cuda::est::fused {

// The mma.sync instance: 4 warps (64 rows) per CTA. The wgmma instance: two warpgroups (128
// rows) per CTA, so each key tile read from L2 serves twice the rows. NW: warps per CTA.
constexpr int kWarps = 4, kRows = 16 * kWarps, kThreads = 32 * kWarps;
constexpr int kTiles = 8;  // 64-unit key tiles per CTA

/// The wgmma instance (sm90a/fused_stats_sm90.cu): launches it for (W, W2, GN) as launch_fused
/// in estimation.cu does for mma.sync; cudaErrorInvalidValue for a combination it lacks.
cudaError_t launch_fused_sm90(const StrideProblem& pb, int W, int W2, int GN, int ngroups,
                              int tiles, GroupStat* stats, cudaStream_t stream);
/// The warp-specialised wgmma instance (same file; Fused::kWgmmaWs): a producer
/// warpgroup fills a 4-stage key-tile ring, the two consumer warpgroups run unsynchronised.
cudaError_t launch_fused_ws_sm90(const StrideProblem& pb, int W, int W2, int GN, int ngroups,
                                 int tiles, GroupStat* stats, cudaStream_t stream);
/// Its ping-pong instance (same file; Fused::kWgmmaPp): the same ring, each consumer
/// warpgroup waits for its step's products before issuing the next step's (no wgmma
/// serialisation), the two taking turns to issue.
cudaError_t launch_fused_pp_sm90(const StrideProblem& pb, int W, int W2, int GN, int ngroups,
                                 int tiles, GroupStat* stats, cudaStream_t stream);
/// Its TMA instance (same file; Fused::kWgmmaTma, the default): the ping-pong kernel with the key
/// tiles copied by TMA (5-D tensor maps that also apply the unit_row permutation) and the lean
/// step (SIEVE_STATS_EPI); the ping-pong kernel itself when units % 16 != 0. Same values.
cudaError_t launch_fused_tma_sm90(const StrideProblem& pb, int W, int W2, int GN, int ngroups,
                                  int tiles, GroupStat* stats, cudaStream_t stream);

/// Head z of a batch: its query representatives, visibility, own scores and statistics.
template <class Stats>
__device__ __forceinline__ void batch_head(StrideProblem& pb, Stats*& stats, int z) {
  if (pb.qrep) pb.qrep += z * pb.z_qrep;
  if (pb.qrep16) pb.qrep16 = static_cast<const __nv_bfloat16*>(pb.qrep16) + z * pb.z_qrep;
  const int64_t kz = z / pb.kgroup;
  if (pb.krep) pb.krep += kz * pb.z_krep;
  if (pb.krep16) pb.krep16 = static_cast<const __nv_bfloat16*>(pb.krep16) + kz * pb.z_krep;
  if (pb.log_w) pb.log_w += kz * pb.z_logw;
  pb.visible += z * pb.z_visible;
  if (pb.own) pb.own += z * pb.z_own;
  stats += z * pb.z_stats;
}

// Key tiles are stored permuted: unit r of the tile goes to row 8 n + c with n = (r % 16) / 2,
// c = 2 (r / 16) + r % 2, i.e. to column c of the n-th n8 tile of the products, so that thread tq
// of a quad (columns 2 tq, 2 tq + 1 of every n8 tile) holds units [16 tq, 16 tq + 16): whole key
// blocks when a block has 8 or 16 units, and the statistics are reduced in the thread without
// shuffles.
__device__ __forceinline__ int unit_row(int r) {
  return ((r & 15) >> 1) * 8 + 2 * (r >> 4) + (r & 1);
}

// ROWS rows of W bf16 into a tile of 2W-byte rows, 16-byte chunks XOR-swizzled by the row (the
// ldmatrix layout); Units: rows permuted by unit_row (ROWS = 64). NT threads.
template <int W, bool Units, int NT = kThreads, int ROWS = 64>
__device__ __forceinline__ void load_rows(uint32_t dst, const __nv_bfloat16* src, int64_t first_row,
                                          int rows_valid) {
  constexpr int chunks = W / 8;
  for (int i = threadIdx.x; i < ROWS * chunks; i += NT) {
    const int r = i / chunks, c = i % chunks, rs = Units ? unit_row(r) : r;
    const bool ok = r < rows_valid;
    const __nv_bfloat16* g = src + (ok ? (first_row + r) * W + c * 8 : 0);
    ptx::cp_async_16(dst + uint32_t((rs * chunks + (c ^ (rs & 7))) * 16), g, ok);
  }
}

// The CTA's rows: visible units per row into s_vis [kRows]; per warp the most visible units and
// the last unit before every one of its rows' last ones; the tiles anybody in the CTA sees.
struct RowLimits {
  int warp_maxv, warp_inner, nt;
};
template <int NW = kWarps>
__device__ __forceinline__ RowLimits row_limits(const StrideProblem& pb, int r0, int x0, int x1,
                                                int* s_vis) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x < 16 * NW) {
    const int r = r0 + threadIdx.x;
    s_vis[threadIdx.x] = r < pb.nqr ? min(pb.visible[r], pb.units) : 0;
  }
  __syncthreads();
  const int wv = max(s_vis[warp * 16 + (lane & 15)], 0);
  RowLimits l{wv, wv - 1, 0};
  for (int o = 8; o > 0; o >>= 1) {
    l.warp_maxv = max(l.warp_maxv, __shfl_xor_sync(0xffffffffu, l.warp_maxv, o));
    l.warp_inner = min(l.warp_inner, __shfl_xor_sync(0xffffffffu, l.warp_inner, o));
  }
  int maxv = 0;
  for (int i = lane; i < 16 * NW; i += 32) maxv = max(maxv, s_vis[i]);
  for (int o = 16; o > 0; o >>= 1) maxv = max(maxv, __shfl_xor_sync(0xffffffffu, maxv, o));
  l.nt = max(0, min(x1, (maxv + 63) / 64) - x0);
  return l;
}

// The warp's 16 rows (16 warp.. 16 warp + 15) of W bf16 staged by load_rows at s_rows into its
// m16n8k16 A fragments (KS = W / 16).
template <int W>
__device__ __forceinline__ void rows_to_fragments(uint32_t s_rows, uint32_t (&a)[W / 16][4]) {
  const int lane = threadIdx.x & 31, wr = (threadIdx.x >> 5) * 16, ar = lane & 15;
  const uint32_t a_off = uint32_t((wr + ar) * 2 * W + 16 * ((lane >> 4) ^ (ar & 7)));
#pragma unroll
  for (int kk = 0; kk < W / 16; ++kk) ptx::ldmatrix_x4(s_rows + (a_off ^ uint32_t(32 * kk)), a[kk]);
}

// The 16 NW query rows [r0, r0 + 16 NW) of W bf16 through shared memory at s_base (16 NW rows
// x 2W bytes) into the warps' m16n8k16 A fragments (16 rows x W: KS = W / 16 fragments). Ends
// with a CTA barrier (the memory is free again).
template <int W, int NW = kWarps>
__device__ __forceinline__ void load_query_fragments(const StrideProblem& pb, int r0, uint32_t s_base,
                                                     uint32_t (&a)[W / 16][4]) {
  load_rows<W, false, 32 * NW, 16 * NW>(s_base, static_cast<const __nv_bfloat16*>(pb.qrep16), r0,
                                        pb.nqr - r0);
  ptx::cp_async_commit();
  ptx::cp_async_wait<0>();
  __syncthreads();
  rows_to_fragments<W>(s_base, a);
  __syncthreads();
}

// Running statistics of a thread: per (row half h, group gl) the max and the sum of exp.
template <int GN>
struct Running {
  static constexpr int GT = GN <= 2 ? 2 / GN : 1;  // groups of this thread (8 or 16 units each)
  static constexpr int QT = GN <= 2 ? 1 : GN / 2;  // threads sharing one group (32 or 64 units)
  float m[2][GT] = {}, s[2][GT] = {};
};

// The log weights of step s's 64 units (slot t of tile x) into dst [64] floats, zero past the
// last unit or without log weights: 4-byte cp.async (slot t's weights start at t * units, not
// 16-byte aligned), issued with the step's key tile so the epilogue reads them from shared
// memory instead of waiting on global loads. NT threads.
// load_log_weights_at: the same by the threads tid < 64 of a group (the warp-specialised
// instance's producer warpgroup, whose threads are not the CTA's first).
__device__ __forceinline__ void load_log_weights_at(uint32_t dst, const StrideProblem& pb, int x,
                                                    int t, int tid) {
  if (tid >= 64) return;
  const int e = x * 64 + tid;
  const bool ok = pb.log_w != nullptr && e < pb.units;
  const float* src = ok ? pb.log_w + int64_t(t) * pb.units + e : nullptr;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst + 4u * uint32_t(tid)),
               "l"(ok ? src : reinterpret_cast<const float*>(pb.visible)), "r"(ok ? 4 : 0)
               : "memory");
}
template <int NT>
__device__ __forceinline__ void load_log_weights(uint32_t dst, const StrideProblem& pb, int x, int t) {
  load_log_weights_at(dst, pb, x, t, int(threadIdx.x));
}

// Tree sum / max of n values (more independent operations than a chain; the sum's order differs
// from a sequential one in the last bits).
template <int N, class F>
__device__ __forceinline__ float tree_reduce(const float* v, F op) {
  if constexpr (N == 1) {
    return v[0];
  } else {
    return op(tree_reduce<N / 2>(v, op), tree_reduce<N / 2>(v + N / 2, op));
  }
}

// The log2 weights of this thread's 16 columns (lane % 4 = tq: units 16 tq.. 16 tq + 15) of a
// step's 64 log weights s_lw [64] in shared memory. Prescaled: s_lw already holds
// __fmul_rn(log weight, kLog2e) (the same f32 product this function forms otherwise), written by
// the producer (the epilogue variants of sm90a/fused_stats_sm90.cu).
template <bool Prescaled = false>
__device__ __forceinline__ void step_log2_weights(const float* s_lw, float (&lw)[8][2]) {
  const int tq = threadIdx.x & 3;
#pragma unroll
  for (int n = 0; n < 8; n += 2) {
    const float4 v = *reinterpret_cast<const float4*>(s_lw + 16 * tq + 2 * n);
    if constexpr (Prescaled) {
      lw[n][0] = v.x, lw[n][1] = v.y, lw[n + 1][0] = v.z, lw[n + 1][1] = v.w;
    } else {
      lw[n][0] = v.x * kLog2e;
      lw[n][1] = v.y * kLog2e;
      lw[n + 1][0] = v.z * kLog2e;
      lw[n + 1][1] = v.w * kLog2e;
    }
  }
}

// The step's scores (finish_score's rules) from the raw products and the log2 weights: a tile
// before every row's last unit (the usual case) needs only the scale and the log weight. Written
// to acc, not into prod: the wgmma instance's products are accumulator registers, which only
// wgmma may define while its pipeline runs (ptxas would serialise it otherwise).
__device__ __forceinline__ void finish_scores(const StrideProblem& pb, const float (&prod)[8][4],
                                              int e0, int t, int r0, const int* s_vis,
                                              const float (&lw)[8][2], const RowLimits& lim,
                                              float (&acc)[8][4]) {
  const int lane = threadIdx.x & 31, wr = (threadIdx.x >> 5) * 16;
  const int g = lane >> 2, tq = lane & 3;  // this thread's rows: g and g + 8 of the warp
  const int units = pb.units;
  const float a2 = pb.alpha * kLog2e;
  if (e0 + 64 <= lim.warp_inner) {
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[n][c] = a2 * prod[n][c] + lw[n][c & 1];
  } else {  // near the rows' last units (read here only: registers are scarce at W = 256)
    int vis[2];
    float own[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int rl = wr + g + 8 * h;
      vis[h] = s_vis[rl];
      own[h] = pb.own != nullptr && t == 0 && r0 + rl < pb.nqr ? pb.own[r0 + rl] * kLog2e : 0.f;
    }
    const float partial2 = pb.partial_logw * kLog2e;
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int h = c >> 1, e = e0 + 16 * tq + 2 * n + (c & 1), v = vis[h];
        const bool last_unit = e == v - 1;
        float sc = a2 * prod[n][c] + lw[n][c & 1];
        sc = pb.own != nullptr && last_unit ? (t == 0 ? own[h] : -INFINITY) : sc;
        sc += pb.has_partial && v == units && last_unit ? partial2 : 0.f;
        acc[n][c] = e < v ? sc : -INFINITY;
      }
  }
}

// Row half h's scores (acc [.][2h], acc [.][2h + 1]) into the running statistics: per (row,
// group) a running max and sum of 2^(score - max) over the slots, in the thread (its 16 units
// hold GT whole groups, or a part of one when QT > 1); the sum is rescaled only when the max
// grows.
template <int GN>
__device__ __forceinline__ void fold_row_half(const float (&acc)[8][4], int h, int t,
                                              Running<GN>& run) {
  constexpr int GT = Running<GN>::GT, KU = 16 / GT;  // KU: this thread's units of a group
#pragma unroll
  for (int gl = 0; gl < GT; ++gl) {
    float v[KU];
#pragma unroll
    for (int k = 0; k < KU; ++k) v[k] = acc[(gl * KU + k) >> 1][2 * h + ((gl * KU + k) & 1)];
    const float lm = tree_reduce<KU>(v, [](float p, float q) { return fmaxf(p, q); });
    float& rm = run.m[h][gl];
    float& rs = run.s[h][gl];
    if (t == 0) {
      rm = -INFINITY;
      rs = 0.f;
    }
    if (lm > rm) {
      rs *= ptx::exp2_fast(rm - lm);  // rm = -inf: rs is 0 and stays 0
      rm = lm;
    }
    const float mm = rm == -INFINITY ? 0.f : rm;  // all -inf: every exp is 0
#pragma unroll
    for (int k = 0; k < KU; ++k) v[k] = ptx::exp2_fast(v[k] - mm);
    rs += tree_reduce<KU>(v, [](float p, float q) { return p + q; });
  }
}

// At the last slot (t = R - 1, R = pb.reps) of tile x: the running statistics to stats
// [row][ngroups] as statistics groups (group_stat.cuh).
template <int GN>
__device__ __forceinline__ void store_stats(const StrideProblem& pb, int x, int t, int R, int r0,
                                            int ngroups, Running<GN>& run, GroupStat* stats) {
  constexpr int NG = 8 / GN;  // groups per tile
  constexpr int GT = Running<GN>::GT, QT = Running<GN>::QT;
  const int lane = threadIdx.x & 31, wr = (threadIdx.x >> 5) * 16;
  const int g = lane >> 2, tq = lane & 3;
  if (t != R - 1) return;
  // groups wider than 16 units: combine the QT threads that share one
#pragma unroll
  for (int o = 1; o < QT; o <<= 1)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float& rm = run.m[h][0];
      float& rs = run.s[h][0];
      const float om = __shfl_xor_sync(0xffffffffu, rm, o);
      const float os = __shfl_xor_sync(0xffffffffu, rs, o);
      const float nm = fmaxf(rm, om), mm = nm == -INFINITY ? 0.f : nm;
      rs = rs * ptx::exp2_fast(rm - mm) + os * ptx::exp2_fast(om - mm);
      rm = nm;
    }
  if (tq % QT != 0) return;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = r0 + wr + g + 8 * h;
    if (r >= pb.nqr) continue;
    GroupStat* out = stats + int64_t(r) * ngroups;
#pragma unroll
    for (int gl = 0; gl < GT; ++gl) {
      const int gid = x * NG + (16 * tq) / (8 * GN) + gl;
      if (gid < ngroups)
        out[gid] = group_stat(run.m[h][gl], run.s[h][gl]);
    }
  }
}

// epilogue with the step's log2 weights already in registers (step_log2_weights).
template <int GN>
__device__ __forceinline__ void epilogue_lw(const StrideProblem& pb, const float (&prod)[8][4], int x,
                                            int t, int r0, const int* s_vis, const float (&lw)[8][2],
                                            const RowLimits& lim, int ngroups, Running<GN>& run,
                                            GroupStat* stats) {
  const int R = pb.reps, e0 = x * 64;
  if (e0 >= lim.warp_maxv) return;
  float acc[8][4];
  finish_scores(pb, prod, e0, t, r0, s_vis, lw, lim, acc);
  fold_row_half(acc, 0, t, run);
  fold_row_half(acc, 1, t, run);
  store_stats(pb, x, t, R, r0, ngroups, run, stats);
}

// One step's epilogue for this warp: raw products prod of 16 rows x 64 units (tile x, slot t of
// R) finished into scores (scale, log weight s_lw [64] from shared memory, the row's own unit,
// the partial last unit; -inf where not visible), folded into the running (max, sum of exp) per
// (row, group), and at the last slot written to stats [row][ngroups] as statistics groups
// (group_stat.cuh: max + log2 of the sum, in log2 units). Scores are kept in log2 units (one FFMA
// for scale and weight, ex2 of score - max without a multiply). Groups of 8 GN units (GN in 1, 2,
// 4, 8).
template <int GN>
__device__ __forceinline__ void epilogue(const StrideProblem& pb, const float (&prod)[8][4], int x, int t,
                                         int r0, const int* s_vis, const float* s_lw,
                                         const RowLimits& lim, int ngroups, Running<GN>& run,
                                         GroupStat* stats) {
  if (x * 64 >= lim.warp_maxv) return;
  float lw[8][2];
  step_log2_weights(s_lw, lw);
  epilogue_lw<GN>(pb, prod, x, t, r0, s_vis, lw, lim, ngroups, run, stats);
}

}  // namespace sieve::attention::cuda::est::fused
