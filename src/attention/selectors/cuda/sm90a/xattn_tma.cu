// Default Hopper path of xattn_stats (peers_gpu.h, chosen by xattn_plan where it fits): the tile,
// wgmma sequence and statistics epilogue of xattn_wgmma.cu, with the operands brought in by TMA
// from one producer thread, in a persistent, warp-specialised kernel.
//
// The rows iS + u of a [seq, D] head (u fixed) form a strided tensor, so a tensor map of dims
// (D, offsets, strides r, heads) with strides (row, S rows, head) and box 64 x 1 x 128 x 1
// (128-byte swizzle) loads exactly one 64-column panel of 128 strides of offset u. When S divides
// the length, one map holds every offset (u is its second coordinate); otherwise there is one map
// per offset, of ceil((seq - u) / S) strides, so that TMA fills the rows past the end with zeros
// (the reference's missing rows). The maps cover every head, so xattn_plan encodes them once per
// selector call. Step s = (t, p) of the inner dimension loads offset S - 1 - t of Q at query
// stride i0 and offset t of K at key strides e0 (and e0 + 128 when the upper half is visible).
//
// One CTA per multiprocessor walks the visible 128 x 256 tiles of the batch (t = blockIdx.x,
// + gridDim.x, ...), numbered compactly: every CTA tabulates the visible tiles per row of query
// tiles (xattn_visible_at, the closed form the visibility kernel writes), so no CTA or loop turn
// is spent on tiles nobody sees. Warpgroup 0 (24 registers) has one thread issue the copies
// against a 4-stage ring of full/empty mbarriers, running on into the next tile while the
// consumers finish the last; warpgroups 1 and 2 (240 registers) issue the same wgmma groups in the
// same order as xattn_wgmma.cu (the main loop instantiated per number of live 128-key halves, so no
// test sits between two wgmmas and ptxas injects no warpgroup.arrive) and release a stage once the
// group that read it has retired. The accumulators, and hence the statistics, are the cp.async
// kernel's (only keys past every row's visibility differ: loaded here, zeros there, masked in
// both). Needs S <= kXattnMaxStride, seq_q, seq_k >= S (every map non-empty) and at most
// kMaxTileRows rows of query tiles.
#include "../peers_gpu.h"
#include "../../../cuda/tensor_map_encoder.h"
#include "xattn_epilogue.cuh"

#include "sieve/attention/cuda/ptx.cuh"
#include "sieve/attention/cuda/tma.cuh"
#include "sieve/attention/cuda/wgmma.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kBM = 128, kBN = 256, kStages = 4, kThreads = 384;
constexpr int kPanel = kBM * 128;      // one 64-column panel of 128 strides (the TMA box)
constexpr int kMaxTileRows = 2048;     // rows of query tiles the CTA's table holds (8 KB)
constexpr int kStage = kPanel + kBN * 128;
constexpr int kBarOff = kStages * kStage;                // full[kStages], empty[kStages] after it
constexpr int kSmem = 1024 + kBarOff + 2 * 8 * kStages;  // +1024: 1024-byte alignment
static_assert(kSmem + 4 * (kMaxTileRows + 1) <= 227 * 1024, "shared memory");

/// The kernel parameter (4 KB): Q's and K's maps, one per antidiagonal offset u (map u,
/// coordinate 0) or one for all (map 0, coordinate u), per XattnPlan::one_q_map / one_k_map.
struct XMaps {
  CUtensorMap q[kXattnMaxStride], k[kXattnMaxStride];
};

/// Key tiles of query-tile row y that some stride of the row sees: visibility grows with the row
/// (causal) or is constant, so the row's last stride sees the most.
SIEVE_HOST_DEVICE int live_tiles(const Geometry& g, int S, int nqs, int nks, int y) {
  const int last = (y + 1) * kBM < nqs ? (y + 1) * kBM - 1 : nqs - 1;
  return (xattn_visible_at(g, S, nks, last) + kBN - 1) / kBN;
}

/// Tile t of the batch (compact numbering over visible tiles, heads outermost, then rows y, then
/// key tiles x): head z, first query stride i0, first key stride e0, and whether the upper
/// 128-key half is visible. rows [tiles_y + 1]: visible tiles of one head before row y.
struct Tile {
  int z, i0, e0;
  bool upper;
};
__device__ __forceinline__ Tile tile_at(int t, const int* rows, int tiles_y, const Geometry& g,
                                        int S, int nqs, int nks) {
  const int per_head = rows[tiles_y];
  Tile r;
  r.z = t / per_head;
  const int rem = t - r.z * per_head;
  int lo = 0, hi = tiles_y - 1;  // the last row starting at or before rem
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (rows[mid] <= rem)
      lo = mid;
    else
      hi = mid - 1;
  }
  r.i0 = lo * kBM;
  r.e0 = (rem - rows[lo]) * kBN;
  const int last = min(r.i0 + kBM, nqs) - 1;
  r.upper = r.e0 + 128 < xattn_visible_at(g, S, nks, last);
  return r;
}

template <class T, int D, int G>
__global__ void __launch_bounds__(kThreads, 1)
    xattn_tma_kernel(const __grid_constant__ XMaps maps, Geometry g, float alpha, int S, int nqs,
                     int nks, int h0, int heads, int group, bool one_q, bool one_k,
                     float2* stats) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int P = D / 64;
  extern __shared__ unsigned char smem_raw[];
  __shared__ int s_rows[kMaxTileRows + 1];
  const uint32_t raw = ptx::smem_addr(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  const uint32_t full0 = base + uint32_t(kBarOff), empty0 = full0 + uint32_t(8 * kStages);
  const auto full = [&](int s) { return full0 + uint32_t(8 * s); };
  const auto empty = [&](int s) { return empty0 + uint32_t(8 * s); };
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int tiles_y = (nqs + kBM - 1) / kBM;
  if (warp == 0) {  // the table of visible tiles per row: a running warp scan, 32 rows per turn
    int carry = 0;
    for (int y0 = 0; y0 < tiles_y; y0 += 32) {
      const int y = y0 + lane;
      int n = y < tiles_y ? live_tiles(g, S, nqs, nks, y) : 0;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int up = __shfl_up_sync(0xffffffffu, n, o);
        if (lane >= o) n += up;
      }
      if (y < tiles_y) s_rows[y + 1] = carry + n;
      carry += __shfl_sync(0xffffffffu, n, 31);
    }
    if (lane == 0) s_rows[0] = 0;
  }
  if (tid == 32) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      tma::mbar_init(full(s), 1);
      tma::mbar_init(empty(s), 8);  // one arrival per consumer warp
    }
    tma::mbar_init_fence();
  }
  __syncthreads();
  const int total = heads * s_rows[tiles_y];
  const int nsteps = S * P;

  if (warp < 4) {  // ---- producer: one thread issues every copy ---------------------------------
    tma::regs_dec<24>();
    if (tid != 0) return;
    int gs = 0;  // position in the ring, continued across the CTA's tiles
    for (int t = int(blockIdx.x); t < total; t += int(gridDim.x)) {
      const Tile tl = tile_at(t, s_rows, tiles_y, g, S, nqs, nks);
      const int h = h0 + tl.z, hk = h / group;
      const uint32_t bytes = uint32_t((tl.upper ? 3 : 2) * kPanel);
      for (int s = 0; s < nsteps; ++s, ++gs) {
        const int st = gs % kStages, tt = s / P, p = s % P, uq = S - 1 - tt;
        const CUtensorMap* mq = &maps.q[one_q ? 0 : uq];
        const CUtensorMap* mk = &maps.k[one_k ? 0 : tt];
        const int cq = one_q ? uq : 0, ck = one_k ? tt : 0;
        tma::mbar_wait(empty(st), (uint32_t(gs / kStages) & 1u) ^ 1u);
        const uint32_t sa = base + uint32_t(st * kStage), sb = sa + uint32_t(kPanel);
        tma::mbar_arrive_expect_tx(full(st), bytes);
        tma::load_4d(sa, mq, full(st), p * 64, cq, tl.i0, h);
        tma::load_4d(sb, mk, full(st), p * 64, ck, tl.e0, hk);
        if (tl.upper)
          tma::load_4d(sb + uint32_t(kPanel), mk, full(st), p * 64, ck, tl.e0 + 128, hk);
      }
    }
    return;
  }

  // ---- consumers: warpgroup wg scores query strides [i0 + 64 wg, i0 + 64 wg + 64) --------------
  tma::regs_inc<240>();
  const int cw = warp - 4, wg = cw >> 2;
  float acc[2][16][4];  // acc[1] is written and read only when `upper`
  int gs = 0;
  // Instantiated per number of live halves rather than testing `upper` before each wgmma: with
  // the test inside, ptxas injects a warpgroup.arrive before every wgmma (C7519, as in
  // xattn_wgmma.cu); without, none.
  const auto mainloop = [&](auto halves) {
    constexpr int NA = decltype(halves)::value;
    for (int s = 0; s < nsteps; ++s, ++gs) {
      const int st = gs % kStages;
      tma::mbar_wait(full(st), uint32_t(gs / kStages) & 1u);
      const uint32_t sa = base + uint32_t(st * kStage), sb = sa + uint32_t(kPanel);
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint64_t da = wgmma::desc_sw128(sa + uint32_t(wg * 64 * 128 + kk * 32), 16, 1024);
#pragma unroll
        for (int nh = 0; nh < NA; ++nh)
          wgmma::wgmma_ss<T, 128>(
              acc[nh], da, wgmma::desc_sw128(sb + uint32_t(nh * 128 * 128 + kk * 32), 16, 1024),
              s > 0 || kk > 0 ? 1 : 0);
      }
      wgmma::commit();
      wgmma::wait<1>();  // step s - 1's group retired: its stage may be rewritten
      if (s > 0) {
        __syncwarp();
        if (lane == 0) tma::mbar_arrive(empty((gs - 1) % kStages));
      }
    }
  };
  const int nkb = g.nkb;
  for (int t = int(blockIdx.x); t < total; t += int(gridDim.x)) {
    const Tile tl = tile_at(t, s_rows, tiles_y, g, S, nqs, nks);
    if (tl.upper)
      mainloop(std::integral_constant<int, 2>{});
    else
      mainloop(std::integral_constant<int, 1>{});
    wgmma::wait<0>();
#pragma unroll
    for (int nh = 0; nh < 2; ++nh) wgmma::fence_operands(acc[nh]);
    __syncwarp();  // the tile's last stage is free: the producer fills it during the epilogue
    if (lane == 0) tma::mbar_arrive(empty((gs - 1) % kStages));
    xattn_block_stats<2, G>(
        acc, lane, tl.i0 + cw * 16, tl.e0, tl.upper, nqs, nkb, alpha,
        [&](int i) { return i < nqs ? xattn_visible_at(g, S, nks, i) : 0; },
        stats + int64_t(tl.z) * nqs * nkb);
  }
#endif
}

// Rows u, u + S, u + 2S.. of every head of a [heads, seq, D] tensor (element strides) as a 4-D
// map (D, offsets, strides, heads), box 64 x 1 x 128 x 1, 128-byte swizzle, zeros outside:
// u < 0 maps every offset (S divides seq), u >= 0 offset u alone (ceil((seq - u) / S) strides).
bool encode_strided(CUtensorMap* m, bool bf16, const void* base, int heads, int seq, int d, int S,
                    int u, int64_t head_stride, int64_t row_stride) {
  const auto fn = detail::tensor_map_encoder();
  if (!fn) return false;
  const bool all = u < 0;
  const int64_t rows = all ? seq / S : (int64_t(seq) - u + S - 1) / S;
  if (heads == 1) head_stride = row_stride * seq;  // never used; any valid value will do
  const cuuint64_t dims[4] = {cuuint64_t(d), cuuint64_t(all ? S : 1), cuuint64_t(rows),
                              cuuint64_t(heads)};
  const cuuint64_t strides[3] = {cuuint64_t(row_stride) * 2, cuuint64_t(row_stride) * S * 2,
                                 cuuint64_t(head_stride) * 2};
  const cuuint32_t box[4] = {64, 1, cuuint32_t(kBM), 1};
  const cuuint32_t elem[4] = {1, 1, 1, 1};
  const CUtensorMapDataType dt =
      bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  // 2-byte elements: the byte offset of row u
  void* at = const_cast<char*>(static_cast<const char*>(base) +
                               (all ? 0 : int64_t(u) * row_stride * 2));
  return fn(m, dt, 4, at, dims, strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE,
            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The maps of one tensor: one for all offsets when S divides seq, else one per offset.
bool encode_all(CUtensorMap* maps, bool* one, bool bf16, const void* base, int heads, int seq,
                int d, int S, int64_t head_stride, int64_t row_stride) {
  *one = seq % S == 0;
  for (int u = *one ? -1 : 0; u < (*one ? 0 : S); ++u)
    if (!encode_strided(&maps[u < 0 ? 0 : u], bf16, base, heads, seq, d, S, u, head_stride,
                        row_stride))
      return false;
  return true;
}

}  // namespace

bool xattn_tma_fits(const HeadInputs& in, const Geometry& geo, int S) {
  const int64_t nqs = (int64_t(geo.seq_q) + S - 1) / S;
  return xattn_wgmma_fits(in, S, geo.block_k) && S <= kXattnMaxStride && geo.seq_q >= S &&
         geo.seq_k >= S && in.heads_q % in.group == 0 && (nqs + kBM - 1) / kBM <= kMaxTileRows;
}

cudaError_t xattn_tma_prepare(const HeadInputs& in, const Geometry& geo, int S, XattnPlan* plan) {
  if (!xattn_tma_fits(in, geo, S)) return cudaErrorInvalidValue;
  if (!encode_all(plan->q_maps, &plan->one_q_map, in.bf16, in.q, in.heads_q, geo.seq_q, in.D, S,
                  in.q_head_stride, in.q_row_stride) ||
      !encode_all(plan->k_maps, &plan->one_k_map, in.bf16, in.k, in.heads_q / in.group,
                  geo.seq_k, in.D, S, in.k_head_stride, in.k_row_stride))
    return cudaErrorInvalidValue;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&plan->num_sms, cudaDevAttrMultiProcessorCount, dev);
  if (e != cudaSuccess) return e;
  return xattn_dispatch(in, S, geo.block_k, [&]<class T, int D, int G>() {
    return cudaFuncSetAttribute(xattn_tma_kernel<T, D, G>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  });
}

cudaError_t xattn_stats_tma(const XattnPlan& plan, const HeadInputs& in, const Geometry& geo,
                            int S, int h0, int heads, float2* stats, cudaStream_t stream) {
  if (!xattn_tma_fits(in, geo, S) || plan.kernel != XattnPlan::Kernel::kTma)
    return cudaErrorInvalidValue;
  if (heads <= 0) return cudaSuccess;
  const int nqs = (geo.seq_q + S - 1) / S, nks = (geo.seq_k + S - 1) / S;
  int64_t per_head = 0;  // the kernel's table, for the grid: no more CTAs than tiles
  for (int y = 0; y < (nqs + kBM - 1) / kBM; ++y) per_head += live_tiles(geo, S, nqs, nks, y);
  const int64_t total = per_head * heads;
  if (total == 0) return cudaSuccess;
  XMaps maps{};
  std::copy(plan.q_maps, plan.q_maps + (plan.one_q_map ? 1 : S), maps.q);
  std::copy(plan.k_maps, plan.k_maps + (plan.one_k_map ? 1 : S), maps.k);
  const unsigned grid = unsigned(std::min<int64_t>(total, std::max(plan.num_sms, 1)));
  const float alpha = in.scale / float(S);
  return xattn_dispatch(in, S, geo.block_k, [&]<class T, int D, int G>() {
    xattn_tma_kernel<T, D, G><<<grid, kThreads, size_t(kSmem), stream>>>(
        maps, geo, alpha, S, nqs, nks, h0, heads, in.group, plan.one_q_map, plan.one_k_map, stats);
    return cudaGetLastError();
  });
}

}  // namespace sieve::attention::cuda::est
