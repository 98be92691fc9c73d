// Default Hopper path of xattn_stats (peers_gpu.h, chosen by xattn_plan where it fits): the
// wgmma sequence and statistics epilogue of xattn_wgmma.cu, with the operands brought in by TMA
// from one producer thread, in a persistent, warp-specialised kernel.
//
// The rows iS + u of a [seq, D] head (u fixed) form a strided tensor, so a tensor map of dims
// (D, offsets, strides r, heads) with strides (row, S rows, head) and box 64 x 1 x R x 1
// (128-byte swizzle) loads exactly one 64-column panel of R strides of offset u. When S divides
// the length, one map holds every offset (u is its second coordinate); otherwise there is one map
// per offset, of ceil((seq - u) / S) strides, so that TMA fills the rows past the end with zeros
// (the reference's missing rows). The maps cover every head, so xattn_plan encodes them once per
// selector call. Step s = (t, p) of the inner dimension loads offset S - 1 - t of Q at query
// stride i0 and offset t of K at key strides e0 (and e0 + 128.. when some stride sees them).
//
// Two tile shapes (XattnPlan::TmaTile): 192 x 192 strides, the default (3 consumer warpgroups at
// 160 registers, keys as a 128-wide and a 64-wide part, R = 64), and 128 x 256 (2 consumer
// warpgroups at 240 registers, keys as two 128-wide parts, R = 128: the cp.async kernel's tile).
// The former does 12.5 % more multiply-adds per byte brought from L2 into the same 48 KB stage;
// on the H200 its selections took ~4 % less time (docs/results/gpu-attention.md).
// One CTA per multiprocessor walks the visible tiles of the batch (t = blockIdx.x, + gridDim.x,
// ...), numbered compactly: every CTA tabulates the visible tiles per row of query tiles
// (xattn_visible_at, the closed form the visibility kernel writes), so no CTA or loop turn is
// spent on tiles nobody sees. Warpgroup 0 (24 registers) has one thread issue the copies against
// a 4-stage ring of full/empty mbarriers, running on into the next tile while the consumers
// finish the last; the consumer warpgroups issue, per 16-wide k-step, one wgmma per key part (the
// main loop instantiated per number of live parts, so no test sits between two wgmmas and ptxas
// injects no warpgroup.arrive) and release a stage once the group that read it has retired. Each
// accumulator sums the same products in the same order as the cp.async kernel's, so the
// statistics are that kernel's (only keys past every row's visibility differ: loaded here, zeros
// there, masked in both). Needs S <= kXattnMaxStride, seq_q, seq_k >= S (every map non-empty)
// and at most kMaxTileRows rows of query tiles.
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

constexpr int kStages = 4;
constexpr int kMaxTileRows = 2048;  // rows of query tiles the CTA's table holds (8 KB)

/// Tile shape: BM query strides (BM / 64 consumer warpgroups) x BN key strides, the keys scored as
/// a 128-wide part and a BN - 128 wide one (loaded and multiplied only where some stride sees
/// it). The ring: kStages stages of one 64-column panel of Q and of K, full / empty barriers.
/// Every copy is one box of 64 columns x kBoxRows strides: 128 where both dimensions allow it
/// (fewer copies), else 64.
template <int BM, int BN>
struct Shape {
  static constexpr int kConsumers = BM / 64, kThreads = 128 * (1 + kConsumers);
  // consumer registers after setmaxnreg: what the producer's 24 leave, a multiple of 8
  static constexpr int kRegs = (65536 / 128 - 24) / kConsumers / 8 * 8;
  static constexpr int kBoxRows = BM % 128 == 0 && BN % 128 == 0 ? 128 : 64;
  static constexpr int kBox = kBoxRows * 128;  // bytes of one box
  static constexpr int kQBytes = BM * 128, kStage = kQBytes + BN * 128;
  static constexpr int kBarOff = kStages * kStage;
  static constexpr int kSmem = 1024 + kBarOff + 2 * 8 * kStages;  // +1024: 1024-byte alignment
  static_assert(BM % 64 == 0 && (BN == 192 || BN == 256), "tile");
  static_assert(kSmem + 4 * (kMaxTileRows + 1) <= 227 * 1024, "shared memory");
};

/// The kernel parameter (4 KB): Q's and K's maps, one per antidiagonal offset u (map u,
/// coordinate 0) or one for all (map 0, coordinate u), per XattnPlan::one_q_map / one_k_map.
struct XMaps {
  CUtensorMap q[kXattnMaxStride], k[kXattnMaxStride];
};

/// Key tiles of query-tile row y that some stride of the row sees: visibility grows with the row
/// (causal) or is constant, so the row's last stride sees the most.
template <int BM, int BN>
SIEVE_HOST_DEVICE int live_tiles(const Geometry& g, int S, int nqs, int nks, int y) {
  const int last = (y + 1) * BM < nqs ? (y + 1) * BM - 1 : nqs - 1;
  return (xattn_visible_at(g, S, nks, last) + BN - 1) / BN;
}

/// Tile t of the batch (compact numbering over visible tiles, heads outermost, then rows y, then
/// key tiles x): head z, first query stride i0, first key stride e0, and whether the second key
/// part is visible. rows [tiles_y + 1]: visible tiles of one head before row y.
struct Tile {
  int z, i0, e0;
  bool upper;
};
template <int BM, int BN>
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
  r.i0 = lo * BM;
  r.e0 = (rem - rows[lo]) * BN;
  const int last = min(r.i0 + BM, nqs) - 1;
  r.upper = r.e0 + 128 < xattn_visible_at(g, S, nks, last);
  return r;
}

template <class T, int D, int G, int BM, int BN>
__global__ void __launch_bounds__(Shape<BM, BN>::kThreads, 1)
    xattn_tma_kernel(const __grid_constant__ XMaps maps, Geometry g, float alpha, int S, int nqs,
                     int nks, int h0, int heads, int group, bool one_q, bool one_k,
                     GroupStat* stats) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = Shape<BM, BN>;
  constexpr int P = D / 64, N1 = BN - 128;
  extern __shared__ unsigned char smem_raw[];
  __shared__ int s_rows[kMaxTileRows + 1];
  const uint32_t raw = ptx::smem_addr(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  const uint32_t full0 = base + uint32_t(C::kBarOff), empty0 = full0 + uint32_t(8 * kStages);
  const auto full = [&](int s) { return full0 + uint32_t(8 * s); };
  const auto empty = [&](int s) { return empty0 + uint32_t(8 * s); };
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int tiles_y = (nqs + BM - 1) / BM;
  if (warp == 0) {  // the table of visible tiles per row: a running warp scan, 32 rows per turn
    int carry = 0;
    for (int y0 = 0; y0 < tiles_y; y0 += 32) {
      const int y = y0 + lane;
      int n = y < tiles_y ? live_tiles<BM, BN>(g, S, nqs, nks, y) : 0;
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
      tma::mbar_init(empty(s), 4 * C::kConsumers);  // one arrival per consumer warp
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
      const Tile tl = tile_at<BM, BN>(t, s_rows, tiles_y, g, S, nqs, nks);
      const int h = h0 + tl.z, hk = h / group;
      // Boxes that start past the last stride (query or key) are not loaded: their rows and
      // columns are masked in the epilogue, so the stale shared memory there is never read out.
      // The 128 x 256 tile never has such a box; the 192 x 192 one has them in the last row of
      // query tiles and the last key tile.
      constexpr int R = C::kBoxRows;
      const int nq = min(BM / R, (nqs - tl.i0 + R - 1) / R);
      const int nk = min((tl.upper ? BN : 128) / R, (nks - tl.e0 + R - 1) / R);
      const uint32_t bytes = uint32_t((nq + nk) * C::kBox);
      for (int s = 0; s < nsteps; ++s, ++gs) {
        const int st = gs % kStages, tt = s / P, p = s % P, uq = S - 1 - tt;
        const CUtensorMap* mq = &maps.q[one_q ? 0 : uq];
        const CUtensorMap* mk = &maps.k[one_k ? 0 : tt];
        const int cq = one_q ? uq : 0, ck = one_k ? tt : 0;
        tma::mbar_wait(empty(st), (uint32_t(gs / kStages) & 1u) ^ 1u);
        const uint32_t sa = base + uint32_t(st * C::kStage), sb = sa + uint32_t(C::kQBytes);
        tma::mbar_arrive_expect_tx(full(st), bytes);
        for (int r = 0; r < nq; ++r)
          tma::load_4d(sa + uint32_t(r * C::kBox), mq, full(st), p * 64, cq, tl.i0 + R * r, h);
        for (int r = 0; r < nk; ++r)
          tma::load_4d(sb + uint32_t(r * C::kBox), mk, full(st), p * 64, ck, tl.e0 + R * r, hk);
      }
    }
    return;
  }

  // ---- consumers: warpgroup wg scores query strides [i0 + 64 wg, i0 + 64 wg + 64) --------------
  tma::regs_inc<C::kRegs>();
  const int cw = warp - 4, wg = cw >> 2;
  float acc0[16][4], acc1[N1 / 8][4];  // keys e0.. e0 + 127; e0 + 128.. only when `upper`
  int gs = 0;
  // Instantiated per number of live parts rather than testing `upper` before each wgmma: with
  // the test inside, ptxas injects a warpgroup.arrive before every wgmma (C7519, as in
  // xattn_wgmma.cu); without, none.
  const auto mainloop = [&](auto parts) {
    constexpr int NA = decltype(parts)::value;
    for (int s = 0; s < nsteps; ++s, ++gs) {
      const int st = gs % kStages;
      tma::mbar_wait(full(st), uint32_t(gs / kStages) & 1u);
      const uint32_t sa = base + uint32_t(st * C::kStage), sb = sa + uint32_t(C::kQBytes);
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint64_t da = wgmma::desc_sw128(sa + uint32_t(wg * 64 * 128 + kk * 32), 16, 1024);
        const int scale_d = s > 0 || kk > 0 ? 1 : 0;
        wgmma::wgmma_ss<T, 128>(acc0, da, wgmma::desc_sw128(sb + uint32_t(kk * 32), 16, 1024),
                                scale_d);
        if constexpr (NA == 2)
          wgmma::wgmma_ss<T, N1>(
              acc1, da, wgmma::desc_sw128(sb + uint32_t(128 * 128 + kk * 32), 16, 1024), scale_d);
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
  const auto vis = [&](int i) { return i < nqs ? xattn_visible_at(g, S, nks, i) : 0; };
  for (int t = int(blockIdx.x); t < total; t += int(gridDim.x)) {
    const Tile tl = tile_at<BM, BN>(t, s_rows, tiles_y, g, S, nqs, nks);
    if (tl.upper)
      mainloop(std::integral_constant<int, 2>{});
    else
      mainloop(std::integral_constant<int, 1>{});
    wgmma::wait<0>();
    wgmma::fence_operands(acc0);
    wgmma::fence_operands(acc1);
    __syncwarp();  // the tile's last stage is free: the producer fills it during the epilogue
    if (lane == 0) tma::mbar_arrive(empty((gs - 1) % kStages));
    GroupStat* out = stats + int64_t(tl.z) * nqs * nkb;
    const int iw = tl.i0 + cw * 16;
    xattn_block_stats<16, G>(acc0, lane, iw, tl.e0, 0, nqs, nkb, alpha, vis, out);
    if (tl.upper)
      xattn_block_stats<N1 / 8, G>(acc1, lane, iw, tl.e0, 128, nqs, nkb, alpha, vis, out);
  }
#endif
}

// Rows u, u + S, u + 2S.. of every head of a [heads, seq, D] tensor (element strides) as a 4-D
// map (D, offsets, strides, heads), box 64 x 1 x box_rows x 1, 128-byte swizzle, zeros outside:
// u < 0 maps every offset (S divides seq), u >= 0 offset u alone (ceil((seq - u) / S) strides).
bool encode_strided(CUtensorMap* m, bool bf16, const void* base, int heads, int seq, int d, int S,
                    int u, int64_t head_stride, int64_t row_stride, int box_rows) {
  const auto fn = detail::tensor_map_encoder();
  if (!fn) return false;
  const bool all = u < 0;
  const int64_t rows = all ? seq / S : (int64_t(seq) - u + S - 1) / S;
  if (heads == 1) head_stride = row_stride * seq;  // never used; any valid value will do
  const cuuint64_t dims[4] = {cuuint64_t(d), cuuint64_t(all ? S : 1), cuuint64_t(rows),
                              cuuint64_t(heads)};
  const cuuint64_t strides[3] = {cuuint64_t(row_stride) * 2, cuuint64_t(row_stride) * S * 2,
                                 cuuint64_t(head_stride) * 2};
  const cuuint32_t box[4] = {64, 1, cuuint32_t(box_rows), 1};
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
                int d, int S, int64_t head_stride, int64_t row_stride, int box_rows) {
  *one = seq % S == 0;
  for (int u = *one ? -1 : 0; u < (*one ? 0 : S); ++u)
    if (!encode_strided(&maps[u < 0 ? 0 : u], bf16, base, heads, seq, d, S, u, head_stride,
                        row_stride, box_rows))
      return false;
  return true;
}

}  // namespace

bool xattn_tma_fits(const HeadInputs& in, const Geometry& geo, int S) {
  const int64_t nqs = (int64_t(geo.seq_q) + S - 1) / S;
  return xattn_wgmma_fits(in, S, geo.block_k) && S <= kXattnMaxStride && geo.seq_q >= S &&
         geo.seq_k >= S && in.heads_q % in.group == 0 && (nqs + 127) / 128 <= kMaxTileRows;
}

namespace {

// f.template operator()<BM, BN>() for the plan's tile shape.
template <class F>
cudaError_t by_shape(const XattnPlan& plan, const F& f) {
  return plan.tma_tile == XattnPlan::TmaTile::k128x256 ? f.template operator()<128, 256>()
                                                       : f.template operator()<192, 192>();
}

}  // namespace

cudaError_t xattn_tma_prepare(const HeadInputs& in, const Geometry& geo, int S, XattnPlan* plan) {
  if (!xattn_tma_fits(in, geo, S)) return cudaErrorInvalidValue;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&plan->num_sms, cudaDevAttrMultiProcessorCount, dev);
  if (e != cudaSuccess) return e;
  return by_shape(*plan, [&]<int BM, int BN>() {
    constexpr int box = Shape<BM, BN>::kBoxRows;
    if (!encode_all(plan->q_maps, &plan->one_q_map, in.bf16, in.q, in.heads_q, geo.seq_q, in.D,
                    S, in.q_head_stride, in.q_row_stride, box) ||
        !encode_all(plan->k_maps, &plan->one_k_map, in.bf16, in.k, in.heads_q / in.group,
                    geo.seq_k, in.D, S, in.k_head_stride, in.k_row_stride, box))
      return cudaErrorInvalidValue;
    return xattn_dispatch(in, S, geo.block_k, [&]<class T, int D, int G>() {
      return cudaFuncSetAttribute(xattn_tma_kernel<T, D, G, BM, BN>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  Shape<BM, BN>::kSmem);
    });
  });
}

cudaError_t xattn_stats_tma(const XattnPlan& plan, const HeadInputs& in, const Geometry& geo,
                            int S, int h0, int heads, GroupStat* stats, cudaStream_t stream) {
  if (!xattn_tma_fits(in, geo, S) || plan.kernel != XattnPlan::Kernel::kTma)
    return cudaErrorInvalidValue;
  if (heads <= 0) return cudaSuccess;
  const int nqs = (geo.seq_q + S - 1) / S, nks = (geo.seq_k + S - 1) / S;
  XMaps maps{};
  std::copy(plan.q_maps, plan.q_maps + (plan.one_q_map ? 1 : S), maps.q);
  std::copy(plan.k_maps, plan.k_maps + (plan.one_k_map ? 1 : S), maps.k);
  const float alpha = in.scale / float(S);
  return by_shape(plan, [&]<int BM, int BN>() {
    int64_t per_head = 0;  // the kernel's table, for the grid: no more CTAs than tiles
    for (int y = 0; y < (nqs + BM - 1) / BM; ++y)
      per_head += live_tiles<BM, BN>(geo, S, nqs, nks, y);
    const int64_t total = per_head * heads;
    if (total == 0) return cudaSuccess;
    const unsigned grid = unsigned(std::min<int64_t>(total, std::max(plan.num_sms, 1)));
    return xattn_dispatch(in, S, geo.block_k, [&]<class T, int D, int G>() {
      xattn_tma_kernel<T, D, G, BM, BN>
          <<<grid, Shape<BM, BN>::kThreads, size_t(Shape<BM, BN>::kSmem), stream>>>(
              maps, geo, alpha, S, nqs, nks, h0, heads, in.group, plan.one_q_map,
              plan.one_k_map, stats);
      return cudaGetLastError();
    });
  });
}

}  // namespace sieve::attention::cuda::est
