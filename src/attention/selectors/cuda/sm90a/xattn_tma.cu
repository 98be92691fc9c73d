// Warp-specialised Hopper path of xattn_stats (opt-in: SIEVE_XATTN_KERNEL=tma, see xattn.cu):
// the tile, wgmma sequence and statistics epilogue of xattn_wgmma.cu, with the operands brought in
// by TMA from one producer thread instead of cp.async from all threads.
//
// The rows iS + u (u fixed) of a [seq, D] head form a strided 2-D tensor of ceil((seq - u) / S)
// rows, so one tensor map per antidiagonal offset u (dims D x rows x heads, row stride S rows,
// box 64 x 128 x 1, 128-byte swizzle) loads exactly one 64-column panel of 128 strides, zeros past
// the last existing row (the reference's missing rows). Step s = (t, p) of the inner dimension
// uses map q[S - 1 - t] at query stride i0 and map k[t] at key strides e0 (and e0 + 128 when the
// upper half is visible). A CTA is 3 warpgroups: warpgroup 0 (24 registers) has one thread issue
// the copies against per-stage full/empty mbarriers; warpgroups 1 and 2 (240 registers) run the
// same wgmma groups in the same order as xattn_wgmma.cu (the main loop instantiated per number of
// live 128-key halves, so no test sits between two wgmmas) and release a stage once the group
// that read it has retired (one group in flight), so the accumulators, and hence the statistics,
// are the existing kernel's (only keys past every row's visibility differ: loaded here, zeros
// there, masked in both). Needs S <= kMaxStride and seq_q, seq_k >= S (every map non-empty).
#include "../peers_gpu.h"
#include "../../../cuda/tensor_map_encoder.h"

#include "sieve/attention/cuda/ptx.cuh"
#include "sieve/attention/cuda/tma.cuh"
#include "sieve/attention/cuda/wgmma.cuh"

#include <cuda.h>  // CUtensorMap (a plain struct; the encoder comes through the runtime)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cudaTypedefs.h>

#include <cmath>
#include <type_traits>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kBM = 128, kThreads = 384, kMaxStride = 16;
constexpr int kPanel = kBM * 128;  // one 64-column panel of 128 strides (the TMA box)

/// One tensor map per antidiagonal offset u of Q and of K (kernel parameter: 4 KB).
struct XMaps {
  CUtensorMap q[kMaxStride], k[kMaxStride];
};

template <int BN, int STAGES>
struct TCfg {
  static constexpr int kABytes = kPanel, kBBytes = BN * 128, kStage = kABytes + kBBytes;
  static constexpr int kBarOff = STAGES * kStage;  // full[STAGES], empty[STAGES] after the ring
  static constexpr int kSmem = 1024 + kBarOff + 2 * 8 * STAGES;  // +1024: 1024-byte alignment
  static_assert(STAGES >= 2 && (BN == 128 || BN == 256), "tile");
  static_assert(kSmem <= 227 * 1024, "shared memory");
};

template <class T, int D, int BN, int STAGES, int G, int CL>
__global__ void __launch_bounds__(kThreads, 1)
    xattn_tma_kernel(const __grid_constant__ XMaps maps, Geometry g, float scale, int S, int nqs,
                     int h0, int group, const int* visible, float2* stats) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int P = D / 64, NH = BN / 128, EB = 8 * G;
  using C = TCfg<BN, STAGES>;
  static_assert(CL == 1 || (CL == 2 && NH == 2), "a pair shares the two 128-key halves");
  extern __shared__ unsigned char smem_raw[];
  __shared__ int s_vis[CL * kBM];  // the cluster's query strides (its CTAs are along grid y)
  __shared__ int s_max[4 * CL];
  const uint32_t raw = ptx::smem_addr(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  const uint32_t full0 = base + uint32_t(C::kBarOff), empty0 = full0 + uint32_t(8 * STAGES);
  const auto full = [&](int s) { return full0 + uint32_t(8 * s); };
  const auto empty = [&](int s) { return empty0 + uint32_t(8 * s); };
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int z = int(blockIdx.z), h = h0 + z, hk = h / group;
  const int e0 = int(blockIdx.x) * BN, i0 = int(blockIdx.y) * kBM;
  // Rank in the cluster of CL CTAs along grid y (cluster dims (1, CL, 1): %cluster_ctarank).
  const int rank = int(blockIdx.y) % CL, ic0 = i0 - rank * kBM;
  const int nkb = g.nkb, kb0 = e0 / EB;
  if (warp < 4 * CL) {  // visibility of the cluster's query strides
    int v = ic0 + tid < nqs ? visible[ic0 + tid] : 0;
    s_vis[tid] = v;
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) s_max[warp] = v;
  }
  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < STAGES; ++s) {
      tma::mbar_init(full(s), 1);
      tma::mbar_init(empty(s), 8 * CL);  // one arrival per consumer warp of the cluster
    }
    tma::mbar_init_fence();
  }
  if constexpr (CL > 1)
    tma::cluster_sync();  // the partner's barriers exist before any multicast or remote arrival
  else
    __syncthreads();
  int maxv = 0;
#pragma unroll
  for (int w = 0; w < 4 * CL; ++w) maxv = max(maxv, s_max[w]);
  // No stride of the tile (of the cluster: its CTAs skip or run together, as each loads half of
  // the other's keys) sees these keys: block_scores never reads them.
  if (e0 >= maxv) return;
  const bool upper = NH > 1 && e0 + 128 < maxv;  // the second 128-wide half is needed
  const int nsteps = S * P;

  if (warp < 4) {  // ---- producer: one thread issues every copy ---------------------------------
    tma::regs_dec<24>();
    // Threads 1.. of the producer warpgroup idle (with pairs: until the final cluster barrier,
    // which every thread of both CTAs reaches, so no thread has exited before it).
    if (tid == 0) {
      const uint32_t bytes = uint32_t(C::kABytes + (upper ? 2 : 1) * kPanel);
      for (int s = 0; s < nsteps; ++s) {
        const int st = s % STAGES, t = s / P, p = s % P;
        tma::mbar_wait(empty(st), (uint32_t(s / STAGES) & 1u) ^ 1u);
        const uint32_t sa = base + uint32_t(st * C::kStage), sb = sa + uint32_t(C::kABytes);
        tma::mbar_arrive_expect_tx(full(st), bytes);
        tma::load_3d(sa, &maps.q[S - 1 - t], full(st), p * 64, i0, h);
        if constexpr (CL == 1) {
          tma::load_3d(sb, &maps.k[t], full(st), p * 64, e0, hk);
          if (upper)
            tma::load_3d(sb + uint32_t(kPanel), &maps.k[t], full(st), p * 64, e0 + 128, hk);
        } else if (rank == 0 || upper) {  // key half `rank` into both CTAs of the pair
          tma::load_3d_multicast(sb + uint32_t(rank * kPanel), &maps.k[t], full(st), p * 64,
                                 e0 + 128 * rank, hk, uint16_t(3));
        }
      }
    }
    // The partner may still arrive on this CTA's barriers (and multicast into it) until it ends.
    if constexpr (CL > 1) tma::cluster_sync();
    return;
  }

  // ---- consumers: warpgroup wg scores query strides [64 wg, 64 wg + 64) -------------------------
  tma::regs_inc<240>();
  const int cw = warp - 4, wg = cw >> 2;
  // acc[1] is read only when `upper`. The main loop is instantiated per number of live halves
  // rather than testing `upper` before each wgmma: with the test inside, ptxas injects a
  // warpgroup.arrive before every wgmma (C7519, as in xattn_wgmma.cu); without, none.
  float acc[NH][16][4];
  const auto mainloop = [&](auto halves) {
    constexpr int NA = decltype(halves)::value;
    for (int s = 0; s < nsteps; ++s) {
      const int st = s % STAGES;
      tma::mbar_wait(full(st), uint32_t(s / STAGES) & 1u);
      const uint32_t sa = base + uint32_t(st * C::kStage), sb = sa + uint32_t(C::kABytes);
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
        if (lane == 0) {
          if constexpr (CL == 1) {
            tma::mbar_arrive(empty((s - 1) % STAGES));
          } else {  // both producers write this stage (each its key half, multicast)
#pragma unroll
            for (int c = 0; c < CL; ++c) tma::mbar_arrive_cluster(empty((s - 1) % STAGES), c);
          }
        }
      }
    }
  };
  if (upper)
    mainloop(std::integral_constant<int, NH>{});
  else
    mainloop(std::integral_constant<int, 1>{});
  wgmma::wait<0>();
#pragma unroll
  for (int nh = 0; nh < NH; ++nh) wgmma::fence_operands(acc[nh]);

  // Statistics (as xattn_wgmma.cu): thread (gr, tq) holds rows gr, gr + 8 of its warp's 16,
  // columns n * 8 + 2 tq + c.
  const int gr = lane >> 2, tq = lane & 3;
  const float alpha = scale / float(S), l2e = 1.4426950408889634f;
  stats += int64_t(z) * nqs * nkb;
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int rl = cw * 16 + gr + rr * 8, i = i0 + rl, vis = s_vis[rank * kBM + rl];
    float2* srow = stats + int64_t(i) * nkb;
#pragma unroll
    for (int nh = 0; nh < NH; ++nh) {
      if (nh > 0 && !upper) break;
#pragma unroll
      for (int b = 0; b < 16 / G; ++b) {
        float x[2 * G];
        float m = -INFINITY;
#pragma unroll
        for (int j = 0; j < G; ++j)
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const int n = b * G + j, col = nh * 128 + n * 8 + 2 * tq + c;
            const float sc = e0 + col < vis ? alpha * acc[nh][n][2 * rr + c] : -INFINITY;
            x[2 * j + c] = sc;
            m = fmaxf(m, sc);
          }
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
        float sum = 0.f;
        if (m != -INFINITY) {
          const float ml = m * l2e;
#pragma unroll
          for (int j = 0; j < 2 * G; ++j) sum += ptx::exp2_fast(fmaf(x[j], l2e, -ml));
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int kb = kb0 + (nh * 128) / EB + b;
        if (tq == (b & 3) && i < nqs && kb < nkb)
          srow[kb] = m == -INFINITY ? make_float2(0.f, 0.f) : make_float2(m, sum);
      }
    }
  }
  if constexpr (CL > 1) tma::cluster_sync();  // no remote arrival may outlive the partner
#endif
}

// Rows u, u + S, u + 2S.. of every head of a [heads, seq, D] tensor (element strides): a 3-D map
// (D, ceil((seq - u) / S), heads), box 64 x 128 x 1, 128-byte swizzle, zeros outside.
template <class T>
bool encode_strided(CUtensorMap* m, const void* base, int heads, int seq, int d, int S, int u,
                    int64_t head_stride, int64_t row_stride) {
  const auto fn = detail::tensor_map_encoder();
  if (!fn) return false;
  const int64_t rows = (int64_t(seq) - u + S - 1) / S;
  if (heads == 1) head_stride = row_stride * seq;  // never used; any valid value will do
  const cuuint64_t dims[3] = {cuuint64_t(d), cuuint64_t(rows), cuuint64_t(heads)};
  const cuuint64_t strides[2] = {cuuint64_t(row_stride) * S * 2, cuuint64_t(head_stride) * 2};
  const cuuint32_t box[3] = {64, cuuint32_t(kBM), 1};
  const cuuint32_t elem[3] = {1, 1, 1};
  const CUtensorMapDataType dt = std::is_same_v<T, __nv_bfloat16>
                                     ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                     : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  void* at = const_cast<T*>(static_cast<const T*>(base) + int64_t(u) * row_stride);
  return fn(m, dt, 3, at, dims, strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE,
            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <class T, int D, int BN, int STAGES, int G, int CL>
cudaError_t launch_cl(const XMaps& maps, const HeadInputs& in, const Geometry& g, int S, int h0,
                      int heads, const int* visible, float2* stats, cudaStream_t stream) {
  const int nqs = (g.seq_q + S - 1) / S, nks = (g.seq_k + S - 1) / S;
  constexpr int smem = TCfg<BN, STAGES>::kSmem;
  auto* kernel = &xattn_tma_kernel<T, D, BN, STAGES, G, CL>;
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const int tiles_y = (nqs + kBM - 1) / kBM;
  // grid y rounded up to whole clusters: a CTA past the last query stride only loads its key half
  // for its partner (its own rows are zeros and write nothing)
  const dim3 grid(unsigned((nks + BN - 1) / BN), unsigned((tiles_y + CL - 1) / CL * CL),
                  unsigned(heads));
  if constexpr (CL == 1) {
    kernel<<<grid, kThreads, size_t(smem), stream>>>(maps, g, in.scale, S, nqs, h0, in.group,
                                                       visible, stats);
    return cudaGetLastError();
  } else {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = size_t(smem);
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 1;
    attr[0].val.clusterDim.y = CL;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, kernel, maps, g, in.scale, S, nqs, h0, in.group, visible,
                              stats);
  }
}

template <class T, int D, int BN, int STAGES, int G>
cudaError_t launch(const XMaps& maps, const HeadInputs& in, const Geometry& g, int S, int h0,
                   int heads, const int* visible, float2* stats, int cluster,
                   cudaStream_t stream) {
  return cluster == 2
             ? launch_cl<T, D, BN, STAGES, G, 2>(maps, in, g, S, h0, heads, visible, stats, stream)
             : launch_cl<T, D, BN, STAGES, G, 1>(maps, in, g, S, h0, heads, visible, stats, stream);
}

template <class T, int D>
cudaError_t by_block(const XMaps& maps, const HeadInputs& in, const Geometry& g, int S, int h0,
                     int heads, const int* visible, float2* stats, int cl, cudaStream_t stream) {
  constexpr int BN = 256, ST = 4;
  switch (g.block_k / S) {
    case 8: return launch<T, D, BN, ST, 1>(maps, in, g, S, h0, heads, visible, stats, cl, stream);
    case 16: return launch<T, D, BN, ST, 2>(maps, in, g, S, h0, heads, visible, stats, cl, stream);
    case 32: return launch<T, D, BN, ST, 4>(maps, in, g, S, h0, heads, visible, stats, cl, stream);
    case 64: return launch<T, D, BN, ST, 8>(maps, in, g, S, h0, heads, visible, stats, cl, stream);
    default: return cudaErrorInvalidValue;
  }
}

template <class T>
cudaError_t with_maps(const HeadInputs& in, const Geometry& g, int S, int h0, int heads,
                      const int* visible, float2* stats, int cl, cudaStream_t stream) {
  XMaps maps{};
  const int heads_k = in.heads_q / in.group;
  for (int u = 0; u < S; ++u)
    if (!encode_strided<T>(&maps.q[u], in.q, in.heads_q, g.seq_q, in.D, S, u, in.q_head_stride,
                           in.q_row_stride) ||
        !encode_strided<T>(&maps.k[u], in.k, heads_k, g.seq_k, in.D, S, u, in.k_head_stride,
                           in.k_row_stride))
      return cudaErrorInvalidValue;
  return in.D == 64 ? by_block<T, 64>(maps, in, g, S, h0, heads, visible, stats, cl, stream)
                    : by_block<T, 128>(maps, in, g, S, h0, heads, visible, stats, cl, stream);
}

}  // namespace

bool xattn_tma_fits(const HeadInputs& in, const Geometry& geo, int S) {
  return xattn_wgmma_fits(in, S, geo.block_k) && S <= kMaxStride && geo.seq_q >= S &&
         geo.seq_k >= S && in.heads_q % in.group == 0;
}

cudaError_t xattn_stats_tma(const HeadInputs& in, const Geometry& geo, int S, int h0, int heads,
                            const int* visible, float2* stats, int cluster, cudaStream_t stream) {
  if (!xattn_tma_fits(in, geo, S) || (cluster != 1 && cluster != 2)) return cudaErrorInvalidValue;
  if (heads <= 0) return cudaSuccess;
  return in.bf16 ? with_maps<__nv_bfloat16>(in, geo, S, h0, heads, visible, stats, cluster, stream)
                 : with_maps<__half>(in, geo, S, h0, heads, visible, stats, cluster, stream);
}

}  // namespace sieve::attention::cuda::est
