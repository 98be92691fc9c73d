// Device kernels shared by the GPU selectors: scores at reduced resolution with one-pass softmax
// statistics, block shares per query block, cumulative selection, CSR assembly, fixed patterns.
// See estimation_gpu.h for the contract; the CPU counterpart is selectors/estimation.{h,cpp}.
#include "estimation_gpu.h"

#include "block_reduce.cuh"
#include "fused_stats.cuh"
#include "group_stat.cuh"
#include "sieve/attention/cuda/ptx.cuh"

#include <cuda_bf16.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kTR = 64, kTE = 64, kTK = 16;

// Representatives stored slot by slot (rr's outliers scored at width W2 by the fused kernel).
bool slot_major(const StrideProblem& pb) { return pb.reps > 1 && pb.W2 > 0; }

int entries_per_block(const StrideProblem& pb, const Geometry& geo) {
  return (geo.block_k / pb.sk) * pb.reps;
}

// The 64-entry tile x of a stride problem: entries [e0, e0 + len) that belong to key blocks
// kb0.. (bpt whole blocks when a block has <= 64 entries) or to 64-entry part `part` of block kb0.
struct EntryTile {
  int e0, len, kb0, part;
};
__device__ __forceinline__ EntryTile entry_tile(const StrideProblem& pb, int x, int eb, int parts, int bpt) {
  const int num_e = pb.units * pb.reps;
  EntryTile t;
  if (eb <= kTE) {
    t.kb0 = x * bpt;
    t.e0 = t.kb0 * eb;
    t.len = min(bpt * eb, num_e - t.e0);
    t.part = 0;
  } else {
    t.kb0 = x / parts;
    t.part = x % parts;
    t.e0 = t.kb0 * eb + t.part * kTE;
    t.len = min(min(kTE, eb - t.part * kTE), num_e - t.e0);
  }
  return t;
}

// Score of entry e0 + el for tile row rl from the raw dot product: scale, log weight, the row's
// own unit (rr) and the partial last pooled key (unisparse); -inf where not visible.
__device__ __forceinline__ float finish_score(const StrideProblem& pb, const int* s_vis, int r0, int rl,
                                              const EntryTile& t, int el, float dot) {
  const int e = t.e0 + el;
  float s = -INFINITY;
  if (el < t.len && e < s_vis[rl]) {
    s = pb.alpha * dot + (pb.log_w ? pb.log_w[e] : 0.f);
    const int u = e / pb.reps, v = s_vis[rl] / pb.reps;
    if (pb.own && u == v - 1) s = e % pb.reps == 0 ? pb.own[r0 + rl] : -INFINITY;
    if (pb.has_partial && v == pb.units && u == pb.units - 1) s += pb.partial_logw;
  }
  return s;
}

// Per (row, key block or part) of a finished score tile st: its statistics group (group_stat.cuh).
__device__ void tile_stats(const StrideProblem& pb, const float (*st)[kTE + 1], int r0, const EntryTile& t,
                           int eb, int parts, int nkb, GroupStat* stats) {
  const int g = eb <= kTE ? eb : t.len;
  const int ngroups = eb <= kTE ? (t.len + eb - 1) / eb : 1;
  for (int gi = threadIdx.x; gi < kTR * ngroups; gi += blockDim.x) {
    const int rl = gi / ngroups, gr = gi % ngroups, r = r0 + rl;
    if (r >= pb.nqr) continue;
    const int j0 = gr * g, j1 = min(j0 + g, t.len);
    float m = -INFINITY;
    for (int j = j0; j < j1; ++j) m = fmaxf(m, st[rl][j]);
    float sum = 0.f;
    if (m != -INFINITY)
      for (int j = j0; j < j1; ++j) sum += expf(st[rl][j] - m);
    const int kb = eb <= kTE ? t.kb0 + gr : t.kb0;
    if (kb < nkb)
      stats[int64_t(r) * nkb * parts + int64_t(kb) * parts + t.part] =
          group_stat(m * kLog2e, sum);
  }
}

using fused::batch_head;

// Visible entries of the tile's rows into s_vis; returns the largest (uniform over the CTA).
__device__ int load_visible(const StrideProblem& pb, int r0, int* s_vis) {
  if (threadIdx.x < kTR) {
    const int r = r0 + threadIdx.x;
    s_vis[threadIdx.x] = r < pb.nqr ? min(pb.visible[r], pb.units) * pb.reps : 0;
  }
  __syncthreads();
  int maxv = 0;
  for (int i = 0; i < kTR; ++i) maxv = max(maxv, s_vis[i]);
  return maxv;
}

// Scores of a 64-row x 64-entry tile (f32 SIMT GEMM, 4x4 per thread), then per (row, key block
// or 64-entry part) its statistics group (group_stat.cuh).
__global__ void __launch_bounds__(256) stride_stats_kernel(StrideProblem pb, int eb, int parts,
                                                           int bpt, int nkb, GroupStat* stats) {
  __shared__ __align__(16) float as[kTK][kTR + 4];
  __shared__ __align__(16) float bs[kTK][kTE + 4];
  __shared__ float st[kTR][kTE + 1];
  __shared__ int s_vis[kTR];
  batch_head(pb, stats, int(blockIdx.z));
  const int tid = threadIdx.x;
  const int r0 = blockIdx.y * kTR;
  const EntryTile t = entry_tile(pb, blockIdx.x, eb, parts, bpt);
  const int e0 = t.e0, len = t.len;
  const int maxv = load_visible(pb, r0, s_vis);
  if (len <= 0 || e0 >= maxv) return;  // nothing visible: stats stay zero

  const int ty = tid >> 4, tx = tid & 15;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < pb.W; k0 += kTK) {
    const int row = tid >> 2, kq = (tid & 3) * 4;
    float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
    if (r0 + row < pb.nqr) a = *reinterpret_cast<const float4*>(pb.qrep + int64_t(r0 + row) * pb.W + k0 + kq);
    if (row < len) b = *reinterpret_cast<const float4*>(pb.krep + int64_t(e0 + row) * pb.W + k0 + kq);
    as[kq][row] = a.x;
    as[kq + 1][row] = a.y;
    as[kq + 2][row] = a.z;
    as[kq + 3][row] = a.w;
    bs[kq][row] = b.x;
    bs[kq + 1][row] = b.y;
    bs[kq + 2][row] = b.z;
    bs[kq + 3][row] = b.w;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTK; ++kk) {
      const float4 av = *reinterpret_cast<const float4*>(&as[kk][ty * 4]);
      const float4 bv = *reinterpret_cast<const float4*>(&bs[kk][tx * 4]);
      const float ar[4] = {av.x, av.y, av.z, av.w}, br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
      st[ty * 4 + i][tx * 4 + j] = finish_score(pb, s_vis, r0, ty * 4 + i, t, tx * 4 + j, acc[i][j]);
  __syncthreads();
  tile_stats(pb, st, r0, t, eb, parts, nkb, stats);
}

// ---- tensor-core estimate (bf16 inputs, f32 accumulation) -------------------------------------
//
// The same tiles and statistics as stride_stats_kernel, but the 64 x 64 x W products run on
// mma.sync.m16n8k16 from bf16 copies of the representatives. One CTA keeps its 64 query rows in
// shared memory and walks up to kMmaTiles consecutive entry tiles, the next tile's keys loading
// (cp.async, double-buffered) while the current one is scored. Rows are W bf16 (W in {64, 128,
// 256}: a power of two, >= 8 chunks of 16 bytes), chunk c of row r stored at chunk c ^ (r & 7)
// so that the 8 row addresses of every ldmatrix phase fall in distinct bank groups.
constexpr int kMmaThreads = 128, kMmaTiles = 8;

__device__ __forceinline__ void load_rows_bf16(uint32_t dst, const __nv_bfloat16* src, int64_t first_row,
                                               int rows_valid, int W) {
  const int chunks = W / 8;
  for (int i = threadIdx.x; i < kTR * chunks; i += kMmaThreads) {
    const int r = i / chunks, c = i % chunks;
    const bool ok = r < rows_valid;
    const __nv_bfloat16* g = src + (ok ? (first_row + r) * W + c * 8 : 0);
    ptx::cp_async_16(dst + uint32_t((r * chunks + (c ^ (r & 7))) * 16), g, ok);
  }
}

__global__ void __launch_bounds__(kMmaThreads) stride_stats_mma_kernel(StrideProblem pb, int eb, int parts,
                                                                       int bpt, int nkb, int tiles,
                                                                       GroupStat* stats) {
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ int s_vis[kTR];
  const int W = pb.W, row_bytes = 2 * W, tile_bytes = kTR * row_bytes;
  const uint32_t s_a = ptx::smem_addr(smem), s_b = s_a + uint32_t(tile_bytes);
  float(*st)[kTE + 1] = reinterpret_cast<float(*)[kTE + 1]>(smem + 3 * tile_bytes);
  batch_head(pb, stats, int(blockIdx.z));
  const int r0 = blockIdx.y * kTR;
  const int x0 = blockIdx.x * kMmaTiles, x1 = min(x0 + kMmaTiles, tiles);
  const int maxv = load_visible(pb, r0, s_vis);
  // tiles run in increasing entries: stop at the first one nobody sees (its stats stay zero)
  int nt = 0;
  while (x0 + nt < x1) {
    const EntryTile t = entry_tile(pb, x0 + nt, eb, parts, bpt);
    if (t.len <= 0 || t.e0 >= maxv) break;
    ++nt;
  }
  if (nt == 0) return;

  const auto* q16 = static_cast<const __nv_bfloat16*>(pb.qrep16);
  const auto* k16 = static_cast<const __nv_bfloat16*>(pb.krep16);
  load_rows_bf16(s_a, q16, r0, pb.nqr - r0, W);
  {
    const EntryTile t = entry_tile(pb, x0, eb, parts, bpt);
    load_rows_bf16(s_b, k16, t.e0, t.len, W);
  }
  ptx::cp_async_commit();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wr = (warp >> 1) * 32, wc = (warp & 1) * 32;  // this warp's 32 x 32 quarter
  // Lane addresses of the first k step; k step kk is the base XOR 32*kk (see flash_kernel.cuh).
  const int ar = lane & 15, br = (lane & 7) + ((lane >> 4) << 3);
  const uint32_t a_off = uint32_t((wr + ar) * row_bytes + 16 * ((lane >> 4) ^ (ar & 7)));
  const uint32_t b_off = uint32_t((wc + br) * row_bytes + 16 * (((lane >> 3) & 1) ^ (br & 7)));
  const int g = lane >> 2, tq = lane & 3;

  for (int i = 0; i < nt; ++i) {
    if (i + 1 < nt) {
      const EntryTile t = entry_tile(pb, x0 + i + 1, eb, parts, bpt);
      load_rows_bf16(s_b + uint32_t(((i + 1) & 1) * tile_bytes), k16, t.e0, t.len, W);
    }
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();  // the query rows and this tile's keys have landed
    __syncthreads();
    const uint32_t sb = s_b + uint32_t((i & 1) * tile_bytes);
    float acc[2][4][4] = {};
    for (int kk = 0; kk < W / 16; ++kk) {
      uint32_t a[2][4], b[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
        ptx::ldmatrix_x4(s_a + ((a_off + uint32_t(mi * 16 * row_bytes)) ^ uint32_t(32 * kk)), a[mi]);
#pragma unroll
      for (int np = 0; np < 2; ++np)
        ptx::ldmatrix_x4(sb + ((b_off + uint32_t(np * 16 * row_bytes)) ^ uint32_t(32 * kk)), b[np]);
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int np = 0; np < 2; ++np) {
          ptx::mma_16816<__nv_bfloat16>(acc[mi][2 * np], a[mi], b[np][0], b[np][1]);
          ptx::mma_16816<__nv_bfloat16>(acc[mi][2 * np + 1], a[mi], b[np][2], b[np][3]);
        }
    }
    const EntryTile t = entry_tile(pb, x0 + i, eb, parts, bpt);
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int n = 0; n < 4; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          // C fragment: rows g (e < 2) and g + 8, columns 2 tq and 2 tq + 1
          const int rl = wr + mi * 16 + g + (e >> 1) * 8, el = wc + n * 8 + 2 * tq + (e & 1);
          st[rl][el] = finish_score(pb, s_vis, r0, rl, t, el, acc[mi][n][e]);
        }
    __syncthreads();
    tile_stats(pb, st, r0, t, eb, parts, nkb, stats);
    __syncthreads();  // st and this key buffer are free again
  }
}

// ---- fused tensor-core statistics ---------------------------------------------------------------
//
// For key blocks of 8 * GN units, GN in {1, 2, 4, 8} (or 64-unit parts of larger blocks when
// reps == 1), aligned to the 64-unit tiles, and rows of W in {128, 256} bf16: 4 warps x 16 rows
// per CTA (three CTAs per SM), the rows' bf16 fragments held in registers for the whole walk,
// each warp scoring 16 rows x 64 units per tile and representative slot (8 n8 accumulators),
// finishing the scores and keeping per (row, group) a running max and sum of exp in registers
// over the slots (the key tile's rows are permuted so that a thread's columns are whole groups;
// wider groups combine 2 or 4 threads once per tile). Representatives are slot-major
// (StrideProblem::W2): slot 0 [units][W] (rr: the mean with its variance half; unisparse: the
// pooled key), slots 1.. [units][W2] (rr's outlier keys, whose variance half is zero, so they are
// scored over the first W2 = D columns only: 5/12 less arithmetic at 5 outliers with moments).
// Group g of a row covers units [g*gs, (g+1)*gs) of every slot, so its statistics index is g in
// both layouts (parts: kb*parts + part = unit / 64). Each warp walks the CTA's tiles up to the
// last one its own rows see and writes every group of those tiles, i.e. every group its rows see:
// nothing needs zeroing first (block_scores reads only what a row sees). The shared pieces
// (layout, epilogue) are in fused_stats.cuh; sm90a/fused_stats_sm90.cu has the wgmma instance.
using fused::kTiles;
using fused::kThreads;
using fused::kRows;

// acc[n] += A (16 rows x 16 KS columns, registers) x B^T (64 units of the swizzled tile at sb).
template <int KS, int RowBytes>
__device__ __forceinline__ void fused_products(const uint32_t (*a)[4], uint32_t sb, uint32_t b_off,
                                               float (&acc)[8][4]) {
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      ptx::ldmatrix_x4(sb + ((b_off + uint32_t(np * 16 * RowBytes)) ^ uint32_t(32 * kk)), b);
      ptx::mma_16816<__nv_bfloat16>(acc[2 * np], a[kk], b[0], b[1]);
      ptx::mma_16816<__nv_bfloat16>(acc[2 * np + 1], a[kk], b[2], b[3]);
    }
  }
}

template <int W, int W2, int GN>
__global__ void __launch_bounds__(kThreads, 3)
    stride_stats_fused_kernel(StrideProblem pb, int ngroups, int tiles, GroupStat* stats) {
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ int s_vis[kRows];
  constexpr int row_bytes = 2 * W, tile_bytes = 64 * row_bytes, KS = W / 16;
  const uint32_t s_base = ptx::smem_addr(smem);
  fused::batch_head(pb, stats, int(blockIdx.z));
  // row blocks in reverse: the last rows see the most tiles, so the heaviest CTAs start first
  const int r0 = int(gridDim.y - 1 - blockIdx.y) * kRows;
  const int x0 = blockIdx.x * kTiles, x1 = min(x0 + kTiles, tiles);
  const int lane = threadIdx.x & 31;
  const int units = pb.units, R = pb.reps;
  const fused::RowLimits lim = fused::row_limits(pb, r0, x0, x1, s_vis);
  const int nt = lim.nt;
  if (nt == 0) return;

  const auto* k16 = static_cast<const __nv_bfloat16*>(pb.krep16);
  // the 64 query rows go through key buffer 0 once, into registers
  uint32_t a[KS][4];
  fused::load_query_fragments<W>(pb, r0, s_base, a);
  // step s scores tile x0 + s / R, slot s % R; its log weights go to lw buffer s % 4
  const uint32_t s_lw = s_base + uint32_t(2 * tile_bytes);
  const auto load_step = [&](int s, uint32_t dst) {
    const int x = x0 + s / R, t = s % R;
    fused::load_log_weights<kThreads>(s_lw + uint32_t((s & 3) * 256), pb, x, t);
    if (t == 0)
      fused::load_rows<W, true>(dst, k16, int64_t(x) * 64, units - x * 64);
    else
      fused::load_rows<W2, true>(dst, k16 + int64_t(units) * W + int64_t(t - 1) * units * W2,
                                 int64_t(x) * 64, units - x * 64);
  };
  load_step(0, s_base);
  ptx::cp_async_commit();

  const int br = (lane & 7) + ((lane >> 4) << 3);
  const uint32_t b_off = uint32_t(br * row_bytes + 16 * (((lane >> 3) & 1) ^ (br & 7)));
  const uint32_t b_off2 = uint32_t(br * 2 * W2 + 16 * (((lane >> 3) & 1) ^ (br & 7)));
  fused::Running<GN> run;

  const int steps = nt * R;
  for (int s = 0; s < steps; ++s) {
    const int x = x0 + s / R, t = s % R;
    if (s + 1 < steps) load_step(s + 1, s_base + uint32_t(((s + 1) & 1) * tile_bytes));
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();
    __syncthreads();
    if (x * 64 < lim.warp_maxv) {
      const uint32_t sb = s_base + uint32_t((s & 1) * tile_bytes);
      float acc[8][4] = {};
      if (t == 0)
        fused_products<KS, row_bytes>(a, sb, b_off, acc);
      else
        fused_products<W2 / 16, 2 * W2>(a, sb, b_off2, acc);
      const float* lw = reinterpret_cast<const float*>(smem + 2 * tile_bytes) + (s & 3) * 64;
      fused::epilogue<GN>(pb, acc, x, t, r0, s_vis, lw, lim, ngroups, run, stats);
    }
    __syncthreads();  // this key buffer is free again
  }
}

// block_reduce, block_exclusive_scan, AddOp: block_reduce.cuh (shared with the peer ports)

// Statistics groups row r reads: those up to the group of its last visible entry (every group the
// stats kernels wrote for it; the layout is kb * parts + part, part = 64-entry piece of a block).
__device__ __forceinline__ int row_groups(const StrideProblem& pb, int eb, int parts, int r) {
  const int v = min(pb.units, pb.visible[r]);
  if (v <= 0) return 0;
  const int last = v * pb.reps - 1;
  return (last / eb) * parts + (parts > 1 ? (last % eb) / 64 : 0) + 1;
}

// Loads in flight per lane in the block-score kernels' passes over statistics rows. The rows are
// read from DRAM once (the stats tensors outgrow L2), so a loop that issued one 8-byte load per
// iteration waited a full memory latency per iteration.
constexpr int kLoadBatch = 8;

// Row r's largest group (log2 units) and 1 / (f64 total of the groups' masses at it), by one warp
// (lane l reads groups l, l + 32, ... in that order, kLoadBatch at a time; xor butterflies), into
// m[i], inv[i] and ng[i] (0: no finite score, the CPU leaves zeros). Shared by both block-score
// kernels, so their values are identical.
__device__ __forceinline__ void row_norm(const StrideProblem& pb, const GroupStat* stats, int eb,
                                         int parts, int nkb, int r, int lane, int i, float* row_m,
                                         float* row_inv, int* row_ng) {
  const int ng = row_groups(pb, eb, parts, r);
  const GroupStat* srow = stats + int64_t(r) * nkb * parts;
  // groups j0 + 32 u of this lane; empty past the row, which both passes skip
  const auto load = [&](int j0, GroupStat (&x)[kLoadBatch]) {
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u) x[u] = j0 + 32 * u < ng ? srow[j0 + 32 * u] : -INFINITY;
  };
  float m = -INFINITY;
  for (int j0 = lane; j0 < ng; j0 += 32 * kLoadBatch) {
    GroupStat x[kLoadBatch];
    load(j0, x);
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u)
      if (group_set(x[u])) m = fmaxf(m, x[u]);
  }
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  double tot = 0;
  if (m != -INFINITY)
    for (int j0 = lane; j0 < ng; j0 += 32 * kLoadBatch) {
      GroupStat x[kLoadBatch];
      load(j0, x);
#pragma unroll
      for (int u = 0; u < kLoadBatch; ++u)  // f32 exp, f64 sum, in the lane's group order
        tot += double(group_mass(x[u], m));  // an empty group adds 0
    }
  for (int o = 16; o > 0; o >>= 1) tot += __shfl_xor_sync(0xffffffffu, tot, o);
  if (lane == 0) {
    row_m[i] = m;
    row_inv[i] = m == -INFINITY ? 0.f : float(1.0 / tot);
    row_ng[i] = m == -INFINITY ? 0 : ng;
  }
}

// Key block kb's unnormalised share of a row (its parts' masses in order) at the row's largest
// group m (an empty part adds 0, which leaves the sum's bits as skipping it would).
__device__ __forceinline__ float block_share(const GroupStat* srow, float m, int kb, int parts,
                                             int ng) {
  float share = 0.f;
  for (int p = 0; p < parts; ++p) {
    const int j = kb * parts + p;
    if (j >= ng) break;
    share += group_mass(srow[j], m);
  }
  return share;
}

// Pooled rows of query block qb (the first is qb * block_q / sq).
__device__ __forceinline__ int block_rows(const StrideProblem& pb, const Geometry& geo, int qb) {
  const int q_end = min((qb + 1) * geo.block_q, geo.seq_q);
  return max(0, min(pb.nqr, (q_end + pb.sq - 1) / pb.sq) - qb * geo.block_q / pb.sq);
}

// out entry *o combined with block sum v (normalised by the f64 total t).
__device__ __forceinline__ void combine_score(float* o, float v, bool normalize, double t,
                                              int combine, float weight, bool first) {
  if (normalize) v = float(double(v) / t);
  const float old = first ? 0.f : *o;  // first: as if out were zeroed before
  if (combine == int(Combine::kSet)) *o = v;
  else if (combine == int(Combine::kMax)) *o = fmaxf(old, v);
  else *o = old + v / weight;
}

// Threads of block_scores_kernel's CTA; the warp kernel reproduces its normaliser's reduction.
constexpr int kScoreThreads = 256;

// The cumulative rule of select_warp_kernel on one row of block scores s (global or shared
// memory), by one warp, written as list `row` (defined with that kernel below). keep: the warp's
// 32 words of shared memory.
__device__ __forceinline__ void select_row_sorted(const Geometry& geo, const float* s, int qb, double share, int row,
                                  int* counts, int* lists, uint32_t* keep, int lane);

// One CTA per query block: sum over its rows of the per-row softmax mass of each key block. Each
// warp first reduces whole rows (max and f64 total of the row, in parallel over rows), then each
// thread adds its key blocks' shares row by row in row order (the order of the CPU and of the
// earlier one-row-at-a-time kernel), so the result does not depend on the launch shape.
// (Measured on the H200 and not kept: the rows staged in shared memory by 8-byte cp.async, and
// each warp's row held in registers with its terms left in shared memory for the second pass.
// Both read the statistics once and compute each exp once, and both were slower, 32K: 0.079 ->
// 0.11-0.13 ms, 128K: 0.58 -> 0.66-1.10 ms: this kernel's 32 registers let 8 CTAs share an SM,
// and the second pass mostly hits the cache.)
__global__ void block_scores_kernel(StrideProblem pb, Geometry geo, int parts, int eb,
                                    const GroupStat* stats, float* out, int combine, bool normalize,
                                    float weight, bool first) {
  extern __shared__ float blk[];  // [nkb], then per row of the block: max, 1/total, groups
  __shared__ double dscratch[32];
  batch_head(pb, stats, int(blockIdx.y));
  out += blockIdx.y * pb.z_out;
  const int qb = blockIdx.x, nkb = geo.nkb;
  const int nvis = visible_blocks(geo, qb);
  const int rb0 = qb * geo.block_q / pb.sq, nr = block_rows(pb, geo, qb);
  float* row_m = blk + nkb;
  float* row_inv = row_m + nr;
  int* row_ng = reinterpret_cast<int*>(row_inv + nr);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int i = warp; i < nr; i += nw)
    row_norm(pb, stats, eb, parts, nkb, rb0 + i, lane, i, row_m, row_inv, row_ng);
  __syncthreads();
  for (int kb = threadIdx.x; kb < nkb; kb += blockDim.x) {
    float acc = 0.f;
    if (kb < nvis && parts == 1) {
      // kLoadBatch rows' entries loaded before any is added; the same terms in row order (a
      // group past a row's ng reads as empty and adds 0 * inv, as block_share's 0)
      for (int i0 = 0; i0 < nr; i0 += kLoadBatch) {
        GroupStat x[kLoadBatch];
#pragma unroll
        for (int u = 0; u < kLoadBatch; ++u) {
          const int i = i0 + u;
          x[u] = i < nr && kb < row_ng[i] ? stats[int64_t(rb0 + i) * nkb + kb] : -INFINITY;
        }
#pragma unroll
        for (int u = 0; u < kLoadBatch; ++u) {
          const int i = i0 + u;
          if (i < nr && row_ng[i] != 0) acc += group_mass(x[u], row_m[i]) * row_inv[i];
        }
      }
    } else if (kb < nvis) {
      for (int i = 0; i < nr; ++i) {
        const int ng = row_ng[i];
        if (ng == 0) continue;
        const GroupStat* srow = stats + int64_t(rb0 + i) * nkb * parts;
        acc += block_share(srow, row_m[i], kb, parts, ng) * row_inv[i];
      }
    }
    blk[kb] = acc;
  }
  double t = 1.0;
  float* o = out + int64_t(qb) * nkb;
  if (normalize) {
    t = 0;
    for (int kb = threadIdx.x; kb < nvis; kb += blockDim.x) t += blk[kb];
    t = block_reduce(t, AddOp{}, dscratch);
    if (t <= 0) {  // the row adds nothing; a first map leaves the zeros a memset would have
      if (first)
        for (int kb = threadIdx.x; kb < nvis; kb += blockDim.x) o[kb] = 0.f;
      return;
    }
  }
  for (int kb = threadIdx.x; kb < nvis; kb += blockDim.x)
    combine_score(o + kb, blk[kb], normalize, t, combine, weight, first);
}

// One warp per query block (kWarpBlocks per CTA, no CTA barriers), for query blocks of few rows
// (unisparse's coarse-query level: 1 row per block at 128:4, 2 at 64:4, where most of the CTA
// kernel's warps idle in its row phase). Same values bit for bit: the rows' max and total by
// row_norm, each key block's sum by block_share in row order, and the normaliser over the CTA
// kernel's partition (virtual thread l + 32 w of 256 sums kb = l + 32 w + 256 n in order; each
// virtual warp's butterfly, then the 8 warp sums in warp order, as block_reduce). The warp's block
// sums and rows go to its own slice of shared memory: [nkb], then max, 1/total, groups per row.
// kUnroll key blocks per lane are in flight together; at 6 CTAs per SM that is 40 registers (2
// blocks at 8 CTAs: 32 registers with a few bytes spilled, timed the same in session 8).
// kSelect (FusedSelect): the query block's row is then selected by the same warp from its sums in
// shared memory (select_row_sorted) instead of writing out for select_rows; only with combine
// kSet and no normalisation, where out would hold the same values.
constexpr int kWarpBlocks = 8, kUnroll = 4;
template <bool kSelect>
__global__ void __launch_bounds__(32 * kWarpBlocks, 6)
    block_scores_warp_kernel(StrideProblem pb, Geometry geo, int parts, int eb, int max_rows,
                             const GroupStat* stats, float* out, int combine, bool normalize,
                             float weight, bool first, FusedSelect sel) {
  extern __shared__ float warp_smem[];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int qb = int(blockIdx.x) * kWarpBlocks + warp, nkb = geo.nkb;
  if (qb >= geo.nqb) return;  // no CTA barriers below
  batch_head(pb, stats, int(blockIdx.y));
  out += blockIdx.y * pb.z_out;
  float* blk = warp_smem + int64_t(warp) * (nkb + 3 * max_rows);
  const int nvis = visible_blocks(geo, qb);
  const int rb0 = qb * geo.block_q / pb.sq, nr = block_rows(pb, geo, qb);
  float* row_m = blk + nkb;
  float* row_inv = row_m + nr;
  int* row_ng = reinterpret_cast<int*>(row_inv + nr);
  for (int i = 0; i < nr; ++i)
    row_norm(pb, stats, eb, parts, nkb, rb0 + i, lane, i, row_m, row_inv, row_ng);
  __syncwarp();
  for (int kb0 = 0; kb0 < nvis; kb0 += 32 * kUnroll) {
    float acc[kUnroll] = {};
    for (int i = 0; i < nr; ++i) {
      const int ng = row_ng[i];
      if (ng == 0) continue;
      const GroupStat* srow = stats + int64_t(rb0 + i) * nkb * parts;
      const float m = row_m[i], inv = row_inv[i];
      if (parts == 1) {  // the loads first (a group past ng adds 0 * inv, as block_share's 0)
        GroupStat x[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int kb = kb0 + 32 * u + lane;
          x[u] = kb < nvis && kb < ng ? srow[kb] : -INFINITY;
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
          if (kb0 + 32 * u + lane < nvis) acc[u] += group_mass(x[u], m) * inv;
        continue;
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int kb = kb0 + 32 * u + lane;
        if (kb < nvis) acc[u] += block_share(srow, m, kb, parts, ng) * inv;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (kb0 + 32 * u + lane < nvis) blk[kb0 + 32 * u + lane] = acc[u];
  }
  __syncwarp();
  if constexpr (kSelect) {
    __shared__ uint32_t keep[kWarpBlocks][32];
    select_row_sorted(geo, blk, qb, sel.share, (sel.head + int(blockIdx.y)) * geo.nqb + qb,
                      sel.counts, sel.lists, keep[warp], lane);
    return;
  }
  double t = 1.0;
  float* o = out + int64_t(qb) * nkb;
  if (normalize) {
    for (int w = 0; w < kScoreThreads / 32; ++w) {
      double part = 0;  // virtual thread lane + 32 w of the CTA kernel
      for (int kb = 32 * w + lane; kb < nvis; kb += kScoreThreads) part += blk[kb];
      for (int s = 16; s > 0; s >>= 1) part += __shfl_xor_sync(0xffffffffu, part, s);
      t = w == 0 ? part : t + part;
    }
    if (t <= 0) {
      if (first)
        for (int kb = lane; kb < nvis; kb += 32) o[kb] = 0.f;
      return;
    }
  }
  for (int kb = lane; kb < nvis; kb += 32)
    combine_score(o + kb, blk[kb], normalize, t, combine, weight, first);
}

__device__ __forceinline__ bool is_forced(const Geometry& g, int qb, int kb, int nvis) {
  if (nvis == 0 || kb >= nvis) return false;
  if (kb == 0) return true;
  const BlockRange d = diagonal_blocks(g, qb, nvis);
  return kb >= d.first && kb <= d.last;
}

// The score of a free block's sort key (select_kernel).
__device__ __forceinline__ float sorted_score(unsigned long long k) {
  return __uint_as_float(static_cast<uint32_t>(k >> 32) - 2u);
}

// One CTA per query block: forced blocks, then the cumulative rule over the others.
__global__ void select_kernel(Geometry geo, const float* scores, double share, int head, int pow2,
                              int* counts, int* lists, int64_t z_scores) {
  scores += blockIdx.y * z_scores;
  head += int(blockIdx.y);
  extern __shared__ unsigned char smem[];
  // sort keys (score bits + 2) << 32 | ~id, in descending order: descending score, then
  // ascending id (the CPU's order; scores are >= 0, so their bits order as the values); forced
  // blocks (1) and invisible ones (0) last. One 64-bit word per entry: one load, compare and
  // store per side of a bitonic pair.
  unsigned long long* key = reinterpret_cast<unsigned long long*>(smem);  // [pow2]
  unsigned char* keep = reinterpret_cast<unsigned char*>(key + pow2);    // [nkb]
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  const int qb = blockIdx.x, nkb = geo.nkb;
  const int nvis = visible_blocks(geo, qb);
  const float* s = scores + int64_t(qb) * nkb;
  double total = 0, forced_mass = 0;
  int nforced = 0;
  for (int i = threadIdx.x; i < pow2; i += blockDim.x) {
    const bool vis = i < nvis;
    const bool f = vis && is_forced(geo, qb, i, nvis);
    if (vis) total += s[i];
    if (f) {
      forced_mass += s[i];
      ++nforced;
    }
    const uint32_t cls = !vis ? 0u : f ? 1u : __float_as_uint(s[i] + 0.0f) + 2u;  // -0 -> +0
    key[i] = (static_cast<unsigned long long>(cls) << 32) | ~static_cast<uint32_t>(i);
    if (i < nkb) keep[i] = f ? 1 : 0;
  }
  total = block_reduce(total, AddOp{}, dscratch);
  forced_mass = block_reduce(forced_mass, AddOp{}, dscratch);
  nforced = block_reduce(nforced, AddOp{}, iscratch);
  const int nfree = nvis - nforced;
  // Only the first next_pow2(nvis) entries need sorting: the rest are invisible (key 0) and
  // already at their sorted place, so causal rows sort ~half as much on average.
  int p2 = 1;
  while (p2 < nvis) p2 <<= 1;
  if (share >= 1.0) {
    for (int i = threadIdx.x; i < nvis; i += blockDim.x) keep[i] = 1;
  } else if (nfree > 0) {
    // bitonic sort; thread t of a stage compares pairs t, t + blockDim.x, ... (i < j = i +
    // stride). At strides <= 32 the pairs of a warp's threads stay inside the same 64-entry
    // segments in every stage, so two such stages in a row need only a warp barrier.
    int prev = 1 << 30;  // after the set-up: a block barrier
    for (int size = 2; size <= p2; size <<= 1)
      for (int stride = size >> 1; stride > 0; stride >>= 1) {
        if (stride > 32 || prev > 32)
          __syncthreads();
        else
          __syncwarp();
        prev = stride;
        for (int t = threadIdx.x; t < p2 / 2; t += blockDim.x) {
          const int i = ((t & ~(stride - 1)) << 1) | (t & (stride - 1)), j = i + stride;
          const unsigned long long ki = key[i], kj = key[j];
          if ((i & size) == 0 ? kj > ki : ki > kj) {
            key[i] = kj;
            key[j] = ki;
          }
        }
      }
    __syncthreads();
    // include sorted entry i iff forced_mass + sum_{j<i} key[j] < share * total
    const double required = share * total;
    const int per = (nfree + blockDim.x - 1) / blockDim.x;
    const int i0 = threadIdx.x * per, i1 = min(i0 + per, nfree);
    double local = 0;
    for (int i = i0; i < i1; ++i) local += sorted_score(key[i]);
    double all;
    double prefix = block_exclusive_scan(local, dscratch, &all);
    for (int i = i0; i < i1; ++i) {
      if (forced_mass + prefix < required) keep[~static_cast<uint32_t>(key[i])] = 1;
      prefix += sorted_score(key[i]);
    }
  }
  __syncthreads();
  // ascending ids of kept blocks
  const int per = (nkb + blockDim.x - 1) / blockDim.x;
  const int i0 = threadIdx.x * per, i1 = min(i0 + per, nkb);
  int local = 0;
  for (int i = i0; i < i1; ++i) local += keep[i];
  int count;
  int pos = block_exclusive_scan(local, iscratch, &count);
  const int row = head * geo.nqb + qb;
  int* out = lists + int64_t(row) * nkb;
  for (int i = i0; i < i1; ++i)
    if (keep[i]) out[pos++] = i;
  if (threadIdx.x == 0) counts[row] = count;
}

// ---- selection, one warp per query block ------------------------------------------------------
//
// The same rule as select_kernel, for rows of at most 256 key blocks: the classes (score bits + 2;
// 1 forced, 0 invisible) sit in registers (lane l holds sorted positions l * KPL .. l * KPL + KPL
// - 1), a bitonic network over the first 32 KPL >= next_pow2(visible) positions runs with
// register compare-exchanges and warp shuffles (no CTA barriers), and the kept blocks are marked
// in a 1024-bit mask in shared memory (one 32-bit word per lane; 8 are used) from which each lane
// writes its ids in ascending order. Only the 32-bit classes are sorted: the cumulative rule needs
// the sorted values, not their ids. The kept free entries are the first K of the order (class
// descending, id ascending), i.e. every entry of a class above c, the class at sorted position
// K - 1, and the lowest-id K - #{class > c} entries of class c, which the lanes then find in
// their unsorted registers. (Sorting 64-bit keys with the id in the low half, as before session
// 12, gave the same sets at twice the compare and shuffle cost: ncu found the kernel
// instruction-bound, docs/results/gpu-attention.md.)
constexpr int kSelectWarps = 4, kSelectMaxKpl = 8;  // up to 32 x 8 = 256 key blocks

template <int KPL>
__device__ __forceinline__ void warp_sort_desc(uint32_t (&key)[kSelectMaxKpl], int lane) {
#pragma unroll
  for (int size = 2; size <= 32 * KPL; size <<= 1) {
#pragma unroll
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      if (stride < KPL) {  // partner in this lane
#pragma unroll
        for (int i = 0; i < KPL; ++i) {
          if (i & stride) continue;
          const int j = i | stride;
          const bool up = ((lane * KPL + i) & size) == 0;  // descending segment: max first
          const uint32_t a = key[i], b = key[j];
          const bool sw = up ? a < b : a > b;
          key[i] = sw ? b : a;
          key[j] = sw ? a : b;
        }
      } else {  // partner lane lane ^ (stride / KPL), same slot
        const int m = stride / KPL;
        const bool lower = (lane & m) == 0;
#pragma unroll
        for (int i = 0; i < KPL; ++i) {
          const bool up = ((lane * KPL + i) & size) == 0;
          const uint32_t o = __shfl_xor_sync(0xffffffffu, key[i], m);
          key[i] = lower == up ? max(o, key[i]) : min(o, key[i]);
        }
      }
    }
  }
}

// One warp writes a row's kept block ids in ascending order: lane w holds the keep bits of blocks
// [32 w, 32 w + 32) in `word`; an exclusive warp scan of the popcounts gives each lane its first
// slot in the row's list (lists + row * nkb), and lane 0 writes the row's count.
__device__ __forceinline__ void write_kept_list(uint32_t word, int lane, int row, int nkb, int* lists,
                                                int* counts) {
  const int c = __popc(word);
  int pos = c;
  for (int o = 1; o < 32; o <<= 1) {
    const int v = __shfl_up_sync(0xffffffffu, pos, o);
    if (lane >= o) pos += v;
  }
  const int count = __shfl_sync(0xffffffffu, pos, 31);
  pos -= c;
  int* out = lists + int64_t(row) * nkb;
  for (uint32_t w = word; w != 0; w &= w - 1) out[pos++] = lane * 32 + __ffs(int(w)) - 1;
  if (lane == 0) counts[row] = count;
}

__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;  // the xor butterfly leaves the identical value in every lane
}

__device__ __forceinline__ void select_row_sorted(const Geometry& geo, const float* s, int qb, double share, int row,
                                  int* counts, int* lists, uint32_t* keep, int lane) {
  keep[lane] = 0;
  __syncwarp();
  const int nvis = visible_blocks(geo, qb);
  int p2 = 32;
  while (p2 < nvis) p2 <<= 1;
  const int kpl = p2 / 32;
  uint32_t cls[kSelectMaxKpl], key[kSelectMaxKpl];  // entry lane * kpl + i: unsorted, sorted
  double total = 0, forced_mass = 0;
  int nforced = 0;
#pragma unroll
  for (int i = 0; i < kSelectMaxKpl; ++i) {
    cls[i] = 0;
    const int p = lane * kpl + i;
    if (i < kpl && p < nvis) {
      const float v = s[p];
      const bool f = is_forced(geo, qb, p, nvis);
      total += v;
      if (f) {
        forced_mass += v;
        ++nforced;
        atomicOr(&keep[p >> 5], 1u << (p & 31));
      }
      cls[i] = f ? 1u : __float_as_uint(v + 0.0f) + 2u;  // -0 -> +0
    }
    key[i] = cls[i];
  }
  total = warp_sum_d(total);
  forced_mass = warp_sum_d(forced_mass);
  for (int o = 16; o > 0; o >>= 1) nforced += __shfl_xor_sync(0xffffffffu, nforced, o);
  const int nfree = nvis - nforced;
  __syncwarp();
  if (share >= 1.0) {
    for (int p = lane; p < nvis; p += 32) atomicOr(&keep[p >> 5], 1u << (p & 31));
  } else if (nfree > 0) {
    switch (kpl) {
      case 1: warp_sort_desc<1>(key, lane); break;
      case 2: warp_sort_desc<2>(key, lane); break;
      case 4: warp_sort_desc<4>(key, lane); break;
      default: warp_sort_desc<8>(key, lane); break;
    }
    // sorted position q is kept iff forced_mass + sum_{r<q} score(r) < share * total; the kept
    // positions are a prefix 0..K-1 of the order (the sums only grow)
    const double required = share * total;
    double local = 0;
#pragma unroll
    for (int i = 0; i < kSelectMaxKpl; ++i)
      if (i < kpl && lane * kpl + i < nfree) local += double(__uint_as_float(key[i] - 2u));
    double incl = local;
    for (int o = 1; o < 32; o <<= 1) {
      const double v = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += v;
    }
    double prefix = __shfl_up_sync(0xffffffffu, incl, 1);
    if (lane == 0) prefix = 0;
    int kept = 0;
    uint32_t last = 0;  // class of this lane's last kept position
#pragma unroll
    for (int i = 0; i < kSelectMaxKpl; ++i) {
      if (i >= kpl || lane * kpl + i >= nfree) continue;
      if (forced_mass + prefix < required) {
        ++kept;
        last = key[i];
      }
      prefix += double(__uint_as_float(key[i] - 2u));
    }
    // K and c (the class at position K - 1: the last lane that kept any)
    const uint32_t any = __ballot_sync(0xffffffffu, kept > 0);
    for (int o = 16; o > 0; o >>= 1) kept += __shfl_xor_sync(0xffffffffu, kept, o);
    if (any != 0) {
      const uint32_t c = __shfl_sync(0xffffffffu, last, 31 - __clz(int(any)));
      int above = 0, ties = 0;  // this lane's unsorted entries of class > c and == c
#pragma unroll
      for (int i = 0; i < kSelectMaxKpl; ++i) {
        above += cls[i] > c;
        ties += cls[i] == c;
      }
      int ties_before = ties;  // exclusive scan over the lanes: ids ascend lane by lane
      for (int o = 1; o < 32; o <<= 1) {
        const int v = __shfl_up_sync(0xffffffffu, ties_before, o);
        if (lane >= o) ties_before += v;
      }
      ties_before -= ties;
      for (int o = 16; o > 0; o >>= 1) above += __shfl_xor_sync(0xffffffffu, above, o);
      const int kept_ties = kept - above;  // the lowest-id ties of class c
#pragma unroll
      for (int i = 0; i < kSelectMaxKpl; ++i) {
        const bool tie = cls[i] == c;
        if (cls[i] > c || (tie && ties_before < kept_ties)) {
          const int p = lane * kpl + i;
          atomicOr(&keep[p >> 5], 1u << (p & 31));
        }
        ties_before += tie;
      }
    }
  }
  __syncwarp();
  write_kept_list(keep[lane], lane, row, geo.nkb, lists, counts);
}

__global__ void __launch_bounds__(32 * kSelectWarps)
    select_warp_kernel(Geometry geo, const float* scores, double share, int head, int* counts,
                       int* lists, int64_t z_scores) {
  __shared__ uint32_t s_keep[kSelectWarps][32];
  scores += blockIdx.y * z_scores;
  head += int(blockIdx.y);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int qb = blockIdx.x * kSelectWarps + warp;
  if (qb >= geo.nqb) return;  // the whole warp
  select_row_sorted(geo, scores + int64_t(qb) * geo.nkb, qb, share, head * geo.nqb + qb, counts,
                    lists, s_keep[warp], lane);
}

// ---- selection, one warp per query block: threshold search --------------------------------------
//
// The same rule as select_kernel without sorting, for rows of 257 to 1024 key blocks (H200, 128K:
// 0.40 ms against the CTA sort's 1.00 ms; at 32K, 256 blocks, slower than select_warp_kernel's
// register sort: 0.056 against 0.045 ms). Free
// (visible, not forced) entries are ordered by the key class c = bits(score) + 2 (scores are >= 0,
// so their bits order as the values), then by ascending id. With F(x) = forced mass + the sum of
// the free scores of class > x (f64; F is non-increasing in x, also in floating point: every
// term is), the sorted entry of class c that comes first among its ties is kept iff
// F(c) < share * total. So the kept free entries are those of class > x* plus a prefix (by id) of
// the ties at x*, where x* is the smallest class with F(x*) < share * total: a binary search over
// the 32-bit classes (about 30 warp reductions) instead of a sort. The ties at x* are then taken
// in ascending id while the running sum (f64, added one by one as the CPU does) stays below the
// target. Entry p of the row sits in lane p % 32, slot p / 32 (coalesced loads); ballots give the
// kept mask word by word and the ascending output. Sums run in another order than the CPU's
// sequential ones (rounding only), as in the sorting kernels before.
constexpr int kSearchMaxKpl = 32;  // up to 32 x 32 = 1024 key blocks

// Kept mask of the row (word i: entries 32 i.. 32 i + 31) in `word` of lane i; KPL words.
template <int KPL>
__device__ __forceinline__ uint32_t warp_select_row(const Geometry& geo, const float* s, int qb,
                                                    int nvis, double share, int lane) {
  uint32_t cls[KPL];  // 0: invisible or forced; else bits(score) + 2
  double val[KPL];
  uint32_t forced_bits = 0;  // lane i: the forced bits of word i
  double total = 0, forced_mass = 0;
  uint32_t cmin = 0xffffffffu, cmax = 0;
#pragma unroll
  for (int i = 0; i < KPL; ++i) {
    const int p = i * 32 + lane;
    cls[i] = 0;
    val[i] = 0;
    const bool vis = p < nvis;
    const float v = vis ? s[p] : 0.f;
    const bool f = vis && is_forced(geo, qb, p, nvis);
    const uint32_t fb = __ballot_sync(0xffffffffu, f);
    if (lane == i) forced_bits = fb;
    if (!vis) continue;
    total += v;
    if (f) {
      forced_mass += v;
      continue;
    }
    cls[i] = __float_as_uint(v + 0.0f) + 2u;  // -0 -> +0
    val[i] = v;
    cmin = min(cmin, cls[i]);
    cmax = max(cmax, cls[i]);
  }
  total = warp_sum_d(total);
  forced_mass = warp_sum_d(forced_mass);
  for (int o = 16; o > 0; o >>= 1) {
    cmin = min(cmin, __shfl_xor_sync(0xffffffffu, cmin, o));
    cmax = max(cmax, __shfl_xor_sync(0xffffffffu, cmax, o));
  }
  uint32_t keep_word = forced_bits;
  if (share >= 1.0) {  // every visible block
#pragma unroll
    for (int i = 0; i < KPL; ++i) {
      const uint32_t b = __ballot_sync(0xffffffffu, i * 32 + lane < nvis);
      if (lane == i) keep_word = b;
    }
    return keep_word;
  }
  const double required = share * total;
  if (cmax == 0 || !(forced_mass < required)) return keep_word;  // no free entry is kept
  const auto above = [&](uint32_t x) {  // F(x): four partial sums (shorter chains), a fixed tree
    constexpr int NA = KPL < 4 ? KPL : 4;
    double acc[NA];
#pragma unroll
    for (int a = 0; a < NA; ++a) acc[a] = 0;
#pragma unroll
    for (int i = 0; i < KPL; ++i) acc[i % NA] += cls[i] > x ? val[i] : 0.0;
#pragma unroll
    for (int a = 1; a < NA; ++a) acc[0] += acc[a];
    return forced_mass + warp_sum_d(acc[0]);
  };
  // smallest x in [cmin - 1, cmax] with F(x) < required; F(cmax) = forced_mass < required
  uint32_t lo = cmin - 1, hi = cmax;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (above(mid) < required)
      hi = mid;
    else
      lo = mid + 1;
  }
  const uint32_t xs = lo;
  // ties at class xs (none when xs = cmin - 1): kept in ascending id while the sum stays below
  int ties = 0;
#pragma unroll
  for (int i = 0; i < KPL; ++i) ties += __popc(__ballot_sync(0xffffffffu, cls[i] == xs));
  int kept_ties = 0;
  if (ties > 0) {
    const double tv = double(__uint_as_float(xs - 2u));
    double cum = above(xs);  // < required: the first tie is kept
    if (tv == 0.0) kept_ties = ties;  // zeros never reach the target
    while (kept_ties < ties && cum < required) {
      ++kept_ties;
      cum += tv;
    }
  }
  int rank = 0;  // ties before this slot, in ascending id
#pragma unroll
  for (int i = 0; i < KPL; ++i) {
    const uint32_t tb = __ballot_sync(0xffffffffu, cls[i] == xs);
    const bool tie_kept = cls[i] == xs && rank + __popc(tb & ((1u << lane) - 1u)) < kept_ties;
    rank += __popc(tb);
    const uint32_t b = __ballot_sync(0xffffffffu, cls[i] > xs || tie_kept);
    if (lane == i) keep_word |= b;
  }
  return keep_word;
}

__global__ void __launch_bounds__(32 * kSelectWarps, 4)
    select_search_kernel(Geometry geo, const float* scores, double share, int head, int* counts,
                       int* lists, int64_t z_scores) {
  scores += blockIdx.y * z_scores;
  head += int(blockIdx.y);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int qb = blockIdx.x * kSelectWarps + warp, nkb = geo.nkb;
  if (qb >= geo.nqb) return;  // the whole warp
  const int nvis = visible_blocks(geo, qb);
  const float* s = scores + int64_t(qb) * nkb;
  int kpl = 1;
  while (32 * kpl < nvis) kpl <<= 1;
  uint32_t word;
  switch (kpl) {
    case 1: word = warp_select_row<1>(geo, s, qb, nvis, share, lane); break;
    case 2: word = warp_select_row<2>(geo, s, qb, nvis, share, lane); break;
    case 4: word = warp_select_row<4>(geo, s, qb, nvis, share, lane); break;
    case 8: word = warp_select_row<8>(geo, s, qb, nvis, share, lane); break;
    case 16: word = warp_select_row<16>(geo, s, qb, nvis, share, lane); break;
    default: word = warp_select_row<32>(geo, s, qb, nvis, share, lane); break;
  }
  if (lane >= kpl) word = 0;
  write_kept_list(word, lane, head * geo.nqb + qb, nkb, lists, counts);
}

__global__ void fill_rows_kernel(Geometry geo, bool streaming, int sink, int local, int* counts, int* lists) {
  const int row = blockIdx.x, qb = row % geo.nqb, nkb = geo.nkb;
  int* out = lists + int64_t(row) * nkb;
  if (!streaming) {
    const int nvis = visible_blocks(geo, qb);
    for (int kb = threadIdx.x; kb < nvis; kb += blockDim.x) out[kb] = kb;
    if (threadIdx.x == 0) counts[row] = nvis;
    return;
  }
  const int last_row = min((qb + 1) * geo.block_q, geo.seq_q) - 1;
  const int diag = geo.causal ? min(nkb - 1, (last_row + geo.q_offset) / geo.block_k) : nkb - 1;
  if (threadIdx.x != 0) return;
  int n = 0;
  for (int kb = 0; kb < min(sink, diag + 1); ++kb) out[n++] = kb;
  for (int kb = max(0, diag - local + 1); kb <= diag; ++kb)
    if (kb >= sink) out[n++] = kb;
  counts[row] = n;
}

__global__ void scan_counts_kernel(int rows, const int* counts, int* indptr) {
  __shared__ int scratch[32];
  block_exclusive_prefix(counts, rows, indptr, scratch);
}

__global__ void gather_rows_kernel(int nkb, const int* counts, const int* lists, const int* indptr, int* indices) {
  const int row = blockIdx.x;
  const int* in = lists + int64_t(row) * nkb;
  int* out = indices + indptr[row];
  for (int i = threadIdx.x; i < counts[row]; i += blockDim.x) out[i] = in[i];
}

// The CSR in one pass (build_csr): tile t = blockIdx.x holds rows [8 t, 8 t + 8), one warp per
// row. Its rows' exclusive offsets come from a decoupled look-back over the tiles before it:
// status[t] = flag << 32 | value (one 64-bit word, so flag and value are read together), flag 1:
// the tile's own total, flag 2: its inclusive prefix. Warp 0 reads 32 predecessors at once; the
// nearest with a prefix ends the walk, a predecessor that has published nothing yet is read
// again (CTAs start in blockIdx order, so it is running). Then each warp copies its row's list.
// The status words must be zero before the launch.
constexpr int kCsrRowsPerTile = 8;
__global__ void __launch_bounds__(32 * kCsrRowsPerTile)
    csr_lookback_kernel(int rows, int nkb, const int* counts, const int* lists, int* indptr,
                        int* indices, unsigned long long* status) {
  __shared__ int s_count[kCsrRowsPerTile];
  __shared__ int s_base;
  const int tile = int(blockIdx.x), lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int row = tile * kCsrRowsPerTile + warp;
  const int c = row < rows ? counts[row] : 0;
  if (lane == 0) s_count[warp] = c;
  __syncthreads();
  if (warp == 0) {
    int own = lane < kCsrRowsPerTile ? s_count[lane] : 0;  // the tile's total
    for (int o = 16; o > 0; o >>= 1) own += __shfl_xor_sync(0xffffffffu, own, o);
    const auto publish = [&](unsigned long long flag, int v) {
      if (lane == 0) atomicExch(status + tile, (flag << 32) | unsigned(v));
    };
    int base = 0;
    if (tile == 0) {
      publish(2, own);
    } else {
      publish(1, own);
      for (int p = tile - 1;;) {  // window: predecessors p, p - 1, ..., p - 31
        const int q = p - lane;
        unsigned long long v = 2ull << 32;  // before tile 0: a prefix of 0
        if (q >= 0) v = atomicAdd(status + q, 0ull);
        const unsigned flag = unsigned(v >> 32);
        const unsigned pref = __ballot_sync(0xffffffffu, flag == 2);
        const unsigned none = __ballot_sync(0xffffffffu, flag == 0);
        const int stop = pref != 0 ? __ffs(int(pref)) - 1 : 31;  // lanes 0..stop count
        const unsigned upto = stop == 31 ? 0xffffffffu : (2u << stop) - 1u;
        if ((none & upto) != 0) continue;  // a predecessor not published yet: read again
        int add = lane <= stop ? int(v & 0xffffffffu) : 0;
        for (int o = 16; o > 0; o >>= 1) add += __shfl_xor_sync(0xffffffffu, add, o);
        base += add;
        if (pref != 0) break;
        p -= 32;
      }
      publish(2, base + own);
    }
    if (lane == 0) s_base = base;
  }
  __syncthreads();
  if (row >= rows) return;
  int start = s_base;
  for (int w = 0; w < warp; ++w) start += s_count[w];
  if (lane == 0) indptr[row] = start;
  if (row == rows - 1 && lane == 0) indptr[rows] = start + c;
  const int* in = lists + int64_t(row) * nkb;
  for (int i = lane; i < c; i += 32) indices[start + i] = in[i];
}

__global__ void sink_columns_kernel(int heads, int sink, int* indptr, int* columns) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= heads) indptr[i] = i * sink;
  if (i < heads * sink) columns[i] = i % sink;
}

int next_pow2(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

int stats_parts(const StrideProblem& pb, const Geometry& geo) {
  if (slot_major(pb)) return 1;  // mma_fused: a key block's units fit one 64-unit tile
  const int eb = entries_per_block(pb, geo);
  return eb <= kTE ? 1 : (eb + kTE - 1) / kTE;
}

cudaError_t stride_stats(const StrideProblem& pb, const Geometry& geo, GroupStat* stats,
                         cudaStream_t stream) {
  if (pb.nqr <= 0 || pb.units <= 0) return cudaSuccess;
  if (pb.W % kTK != 0 || slot_major(pb)) return cudaErrorInvalidValue;
  const int eb = entries_per_block(pb, geo);
  const int parts = stats_parts(pb, geo);
  const int bpt = eb <= kTE ? kTE / eb : 1;
  const int gx = eb <= kTE ? (geo.nkb + bpt - 1) / bpt : geo.nkb * parts;
  const dim3 grid(unsigned(gx), unsigned((pb.nqr + kTR - 1) / kTR), unsigned(pb.heads));
  stride_stats_kernel<<<grid, 256, 0, stream>>>(pb, eb, parts, bpt, geo.nkb, stats);
  return cudaGetLastError();
}

bool mma_fits(const StrideProblem& pb) { return pb.W == 64 || pb.W == 128 || pb.W == 256; }

bool mma_fused(const StrideProblem& pb, const Geometry& geo) {
  const int upb = geo.block_k / pb.sk;  // units per key block
  if ((pb.W != 128 && pb.W != 256) || upb % 8 != 0) return false;
  if (pb.reps == 1) return upb <= kTE ? kTE % upb == 0 : upb % kTE == 0;
  // slot-major representatives: outlier slots of W2 = D (rows of >= 8 swizzle chunks)
  const bool widths = (pb.W == 256 && pb.W2 == 128) || (pb.W == 128 && (pb.W2 == 64 || pb.W2 == 128));
  return widths && kTE % upb == 0;
}

namespace {
template <int W, int W2, int GN>
cudaError_t launch_fused(const StrideProblem& pb, const Geometry& geo, GroupStat* stats,
                         cudaStream_t stream) {
  const int ngroups = geo.nkb * stats_parts(pb, geo);
  const int tiles = (pb.units + kTE - 1) / kTE;
  switch (pb.fused) {
    case StrideProblem::Fused::kWgmmaTma:
      return fused::launch_fused_tma_sm90(pb, W, W2, GN, ngroups, tiles, stats, stream);
    case StrideProblem::Fused::kWgmmaPp:
      return fused::launch_fused_pp_sm90(pb, W, W2, GN, ngroups, tiles, stats, stream);
    case StrideProblem::Fused::kWgmmaWs:
      return fused::launch_fused_ws_sm90(pb, W, W2, GN, ngroups, tiles, stats, stream);
    case StrideProblem::Fused::kWgmma:
      return fused::launch_fused_sm90(pb, W, W2, GN, ngroups, tiles, stats, stream);
    case StrideProblem::Fused::kMmaSync: break;
  }
  // two key tiles (the query rows pass through the first), four steps' log weights
  const int smem = 2 * 64 * 2 * W + 4 * 64 * 4;
  const cudaError_t e = cudaFuncSetAttribute(stride_stats_fused_kernel<W, W2, GN>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const dim3 grid(unsigned((tiles + kTiles - 1) / kTiles), unsigned((pb.nqr + kRows - 1) / kRows),
                  unsigned(pb.heads));
  stride_stats_fused_kernel<W, W2, GN>
      <<<grid, kThreads, size_t(smem), stream>>>(pb, ngroups, tiles, stats);
  return cudaGetLastError();
}

template <int W, int W2>
cudaError_t launch_fused(const StrideProblem& pb, const Geometry& geo, GroupStat* stats,
                         cudaStream_t stream) {
  switch (std::min(geo.block_k / pb.sk, kTE) / 8) {
    case 1:
      return launch_fused<W, W2, 1>(pb, geo, stats, stream);
    case 2:
      return launch_fused<W, W2, 2>(pb, geo, stats, stream);
    case 4:
      return launch_fused<W, W2, 4>(pb, geo, stats, stream);
    default:
      return launch_fused<W, W2, 8>(pb, geo, stats, stream);
  }
}
}  // namespace

cudaError_t stride_stats_mma(const StrideProblem& pb, const Geometry& geo, GroupStat* stats,
                             cudaStream_t stream) {
  if (pb.nqr <= 0 || pb.units <= 0) return cudaSuccess;
  if (!mma_fits(pb) || pb.qrep16 == nullptr || pb.krep16 == nullptr) return cudaErrorInvalidValue;
  if (slot_major(pb) && !mma_fused(pb, geo)) return cudaErrorInvalidValue;
  if (mma_fused(pb, geo)) {  // W2 matters only with outlier slots (reps > 1)
    if (pb.W == 256) return launch_fused<256, 128>(pb, geo, stats, stream);
    return pb.reps > 1 && pb.W2 == 64 ? launch_fused<128, 64>(pb, geo, stats, stream)
                                      : launch_fused<128, 128>(pb, geo, stats, stream);
  }
  const int eb = entries_per_block(pb, geo);
  const int parts = stats_parts(pb, geo);
  const int bpt = eb <= kTE ? kTE / eb : 1;
  const int tiles = eb <= kTE ? (geo.nkb + bpt - 1) / bpt : geo.nkb * parts;
  const size_t smem = size_t(3) * kTR * 2 * pb.W + sizeof(float) * kTR * (kTE + 1);
  const cudaError_t e =
      cudaFuncSetAttribute(stride_stats_mma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (e != cudaSuccess) return e;
  const dim3 grid(unsigned((tiles + kMmaTiles - 1) / kMmaTiles), unsigned((pb.nqr + kTR - 1) / kTR),
                  unsigned(pb.heads));
  stride_stats_mma_kernel<<<grid, kMmaThreads, smem, stream>>>(pb, eb, parts, bpt, geo.nkb, tiles, stats);
  return cudaGetLastError();
}

// Which block-sum kernel runs: the warp kernel where a query block has at most kWarpRows rows
// (unisparse's 64:4 level: on the H200 0.139 -> 0.073 ms at 64K, 0.35 -> 0.23 ms at 128K), the
// CTA kernel otherwise (rr's and the 16:16 level's 8 rows: the warp kernel was as fast at 32K and
// 64K and 10-40 % slower at 128K; docs/results/gpu-attention.md, session 8). SIEVE_BLOCK_SCORES=cta
// or =warp forces one (same values; read at every launch so that tests can switch it).
// The caller may ask for the warp kernel at any row count (rr since session 25: at 32K with the
// selection fused, 0.442-0.446 -> 0.436-0.438 ms for rr with one outlier; at 128K 3.20-3.23 ->
// 3.15 ms). The selection fused into the CTA kernel took 63 registers, half the CTAs per SM,
// and 0.488-0.491 ms, so under the CTA kernel it stays select_rows' launch.
constexpr int kWarpRows = 2;
static bool use_block_scores_warp(int rows, bool prefer_warp) {
  const char* v = std::getenv("SIEVE_BLOCK_SCORES");  // NOLINT(concurrency-mt-unsafe)
  if (v != nullptr && std::strcmp(v, "cta") == 0) return false;
  if (v != nullptr && std::strcmp(v, "warp") == 0) return true;
  return prefer_warp || rows <= kWarpRows;
}

static cudaError_t launch_block_scores_warp(const StrideProblem& pb, const Geometry& geo,
                                            int max_rows, size_t smem, const GroupStat* stats,
                                            float* out, Combine combine, bool normalize,
                                            float weight, cudaStream_t stream, bool first,
                                            const FusedSelect* sel) {
  const auto kernel = sel ? block_scores_warp_kernel<true> : block_scores_warp_kernel<false>;
  if (smem > 48 * 1024) {
    const cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(unsigned((geo.nqb + kWarpBlocks - 1) / kWarpBlocks), unsigned(pb.heads));
  kernel<<<grid, 32 * kWarpBlocks, smem, stream>>>(pb, geo, stats_parts(pb, geo),
                                                   entries_per_block(pb, geo), max_rows, stats,
                                                   out, int(combine), normalize, weight, first,
                                                   sel ? *sel : FusedSelect{});
  return cudaGetLastError();
}

bool block_scores_can_select(const Geometry& geo) { return geo.nkb <= 32 * kSelectMaxKpl; }

cudaError_t clear_stats(GroupStat* stats, int64_t n, cudaStream_t stream) {
  // 0xff bytes are a NaN, which group_set reads as an empty group (no 32-bit fill in the runtime)
  return n > 0 ? cudaMemsetAsync(stats, 0xff, size_t(n) * sizeof(GroupStat), stream) : cudaSuccess;
}

cudaError_t block_scores(const StrideProblem& pb, const Geometry& geo, const GroupStat* stats,
                         float* out,
                         Combine combine, bool normalize, float weight, cudaStream_t stream,
                         bool first, const FusedSelect* sel, bool prefer_warp) {
  if (geo.nqb <= 0) return cudaSuccess;
  if (sel && (!block_scores_can_select(geo) || combine != Combine::kSet || normalize ||
              sel->counts == nullptr || sel->lists == nullptr))
    return cudaErrorInvalidValue;
  const int max_rows = (geo.block_q + pb.sq - 1) / pb.sq + 1;  // rows of one query block
  const size_t warp_smem = size_t(geo.nkb + 3 * max_rows) * 4 * kWarpBlocks;
  if (use_block_scores_warp((geo.block_q + pb.sq - 1) / pb.sq, prefer_warp) &&
      warp_smem <= 200 * 1024)  // else the CTA kernel (same values)
    return launch_block_scores_warp(pb, geo, max_rows, warp_smem, stats, out, combine, normalize,
                                    weight, stream, first, sel);
  const size_t smem = size_t(geo.nkb + 3 * max_rows) * 4;
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(
        block_scores_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(unsigned(geo.nqb), unsigned(pb.heads));
  block_scores_kernel<<<grid, kScoreThreads, smem, stream>>>(
      pb, geo, stats_parts(pb, geo), entries_per_block(pb, geo), stats, out, int(combine),
      normalize, weight, first);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess || sel == nullptr) return e;
  return select_rows(geo, out, sel->share, sel->head, sel->counts, sel->lists, stream, pb.heads,
                     pb.z_out);
}

cudaError_t select_rows(const Geometry& geo, const float* scores, double share, int head, int* counts,
                        int* lists, cudaStream_t stream, int heads, int64_t z_scores) {
  if (geo.nqb <= 0) return cudaSuccess;
  // one warp per query block: the register sort up to 256 key blocks, the threshold search up
  // to 1024; above, the CTA's bitonic sort
  if (geo.nkb <= 32 * kSelectMaxKpl) {
    select_warp_kernel<<<dim3(unsigned((geo.nqb + kSelectWarps - 1) / kSelectWarps), unsigned(heads)),
                         32 * kSelectWarps, 0, stream>>>(geo, scores, share, head, counts, lists,
                                                         z_scores);
    return cudaGetLastError();
  }
  if (geo.nkb <= 32 * kSearchMaxKpl) {
    const dim3 grid(unsigned((geo.nqb + kSelectWarps - 1) / kSelectWarps), unsigned(heads));
    select_search_kernel<<<grid, 32 * kSelectWarps, 0, stream>>>(geo, scores, share, head, counts,
                                                                 lists, z_scores);
    return cudaGetLastError();
  }
  const int pow2 = next_pow2(geo.nkb);
  const size_t smem = size_t(pow2) * 8 + size_t(geo.nkb);
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(select_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return e;
  }
  select_kernel<<<dim3(unsigned(geo.nqb), unsigned(heads)), 256, smem, stream>>>(
      geo, scores, share, head, pow2, counts, lists, z_scores);
  return cudaGetLastError();
}

cudaError_t fill_rows(const Geometry& geo, int heads, bool streaming, int sink_blocks, int local_blocks,
                      int* counts, int* lists, cudaStream_t stream) {
  if (heads * geo.nqb <= 0) return cudaSuccess;
  fill_rows_kernel<<<heads * geo.nqb, 128, 0, stream>>>(geo, streaming, sink_blocks, local_blocks, counts, lists);
  return cudaGetLastError();
}

int64_t build_csr_status_words(int rows) {
  return std::max<int64_t>(1, (int64_t(rows) + kCsrRowsPerTile - 1) / kCsrRowsPerTile);
}

cudaError_t build_csr(int rows, int nkb, const int* counts, const int* lists, int* indptr, int* indices,
                      cudaStream_t stream, unsigned long long* status) {
  const char* v = std::getenv("SIEVE_CSR");  // NOLINT(concurrency-mt-unsafe)
  if (status != nullptr && rows > 0 && !(v != nullptr && std::strcmp(v, "two") == 0)) {
    const int64_t tiles = build_csr_status_words(rows);
    cudaError_t e = cudaMemsetAsync(status, 0, size_t(tiles) * sizeof(unsigned long long), stream);
    if (e != cudaSuccess) return e;
    csr_lookback_kernel<<<unsigned(tiles), 32 * kCsrRowsPerTile, 0, stream>>>(
        rows, nkb, counts, lists, indptr, indices, status);
    return cudaGetLastError();
  }
  scan_counts_kernel<<<1, 1024, 0, stream>>>(rows, counts, indptr);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess || rows == 0) return e;
  gather_rows_kernel<<<rows, 128, 0, stream>>>(nkb, counts, lists, indptr, indices);
  return cudaGetLastError();
}

cudaError_t fill_sink_columns(int heads, int sink, int* column_indptr, int* columns, cudaStream_t stream) {
  const int n = heads * sink + heads + 1;
  sink_columns_kernel<<<(n + 255) / 256, 256, 0, stream>>>(heads, sink, column_indptr, columns);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda::est
