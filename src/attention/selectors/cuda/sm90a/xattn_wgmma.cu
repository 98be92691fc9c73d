// Hopper (wgmma, sm_90a) cp.async path of xattn_stats (peers_gpu.h; the default TMA kernel in
// xattn_tma.cu, the mma.sync path in ../xattn.cu): the same antidiagonal stride scores and
// per-(query stride, key block) softmax statistics. It runs where the TMA kernel does not fit
// (S > 16, sequences shorter than S) and under SIEVE_XATTN_KERNEL=wgmma.
//
// A CTA is two warpgroups (256 threads) and owns 128 query strides x BN key strides; warpgroup w
// scores strides [64w, 64w + 64). The inner dimension S * D runs in steps of one 64-element panel
// of one antidiagonal offset t: query rows iS + S - 1 - t and key rows jS + t, loaded by cp.async
// (all threads, STAGES-deep ring) into 128-byte-swizzled panels, the K-major layout wgmma reads.
// One wgmma group stays in flight across the step barrier. The statistics come straight from the
// accumulators (xattn_epilogue.cuh, shared with the TMA kernel).
// Tiles no query stride of the CTA sees are skipped (block_scores reads only visible blocks).
#include "../peers_gpu.h"
#include "xattn_epilogue.cuh"

#include "sieve/attention/cuda/ptx.cuh"
#include "sieve/attention/cuda/wgmma.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <type_traits>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kBM = 128, kThreads = 256;

// 128 x 256 strides, 4 stages of 48 KB: one CTA per SM. Measured on the H200 (2026-11-29):
// 128 x 128 strides with 3 stages (two CTAs per SM) took 4-5 % longer at 128K, the same at 32K.
template <int BN, int STAGES>
struct XCfg {
  static constexpr int kABytes = kBM * 128, kBBytes = BN * 128, kStage = kABytes + kBBytes;
  static constexpr int kSmem = 1024 + STAGES * kStage;  // +1024: swizzle atoms 1024-byte aligned
  static_assert(STAGES >= 3 && (BN == 128 || BN == 256), "tile");
};

// Byte offset of 16-byte chunk c (0..7) of row r in a [rows][128 B] panel, 128-byte swizzle.
__device__ __forceinline__ uint32_t swz(int r, int c) {
  return uint32_t(r * 128 + ((c ^ (r & 7)) << 4));
}

template <class T, int D, int BN, int STAGES, int G>
__global__ void __launch_bounds__(kThreads, BN == 128 ? 2 : 1)
    xattn_wgmma_kernel(HeadInputs in, Geometry g, int S, int nqs, int nks, int h0,
                       const int* visible, GroupStat* stats) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int P = D / 64, NH = BN / 128;
  using C = XCfg<BN, STAGES>;
  extern __shared__ unsigned char smem_raw[];
  __shared__ int s_vis[kBM];
  __shared__ int s_max[kThreads / 32];
  const uint32_t raw = ptx::smem_addr(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const int z = int(blockIdx.z), h = h0 + z, hk = h / in.group;
  const int e0 = int(blockIdx.x) * BN, i0 = int(blockIdx.y) * kBM;
  const int nkb = g.nkb;
  int v = 0;
  if (tid < kBM) {
    v = i0 + tid < nqs ? visible[i0 + tid] : 0;
    s_vis[tid] = v;
  }
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (lane == 0) s_max[warp] = v;
  __syncthreads();
  int maxv = 0;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) maxv = max(maxv, s_max[w]);
  if (e0 >= maxv) return;  // no stride of the tile sees these keys: block_scores never reads them
  const int kend = min(maxv, nks);  // key strides past every row's visibility are not loaded
  const bool upper = NH > 1 && e0 + 128 < maxv;  // the second 128-wide half is needed

  stats += int64_t(z) * nqs * nkb;
  const T* q = static_cast<const T*>(in.q) + int64_t(h) * in.q_head_stride;
  const T* k = static_cast<const T*>(in.k) + int64_t(hk) * in.k_head_stride;
  const int nsteps = S * P;
  const auto load = [&](int s) {
    if (s >= nsteps) return;
    const int t = s / P, p = s % P;
    const uint32_t sa = base + uint32_t((s % STAGES) * C::kStage), sb = sa + C::kABytes;
    for (int x = tid; x < kBM * 8; x += kThreads) {
      const int r = x >> 3, c = x & 7;
      const int qi = i0 + r, qrow = qi * S + S - 1 - t;
      const bool ok = qi < nqs && qrow < g.seq_q;
      ptx::cp_async_16(sa + swz(r, c), ok ? q + int64_t(qrow) * in.q_row_stride + p * 64 + c * 8 : q,
                       ok);
    }
    for (int x = tid; x < BN * 8; x += kThreads) {
      const int r = x >> 3, c = x & 7;
      const int ke = e0 + r, krow = ke * S + t;
      const bool ok = ke < kend && krow < g.seq_k;
      ptx::cp_async_16(sb + swz(r, c), ok ? k + int64_t(krow) * in.k_row_stride + p * 64 + c * 8 : k,
                       ok);
    }
  };

  float acc[NH][16][4] = {};
#pragma unroll
  for (int s = 0; s < STAGES - 2; ++s) {
    load(s);
    ptx::cp_async_commit();
  }
  for (int s = 0; s < nsteps; ++s) {
    ptx::cp_async_wait<STAGES - 3>();
    wgmma::fence_proxy_async();
    __syncthreads();  // stage s landed everywhere; every warpgroup finished step s - 2's wgmma
    const uint32_t sa = base + uint32_t((s % STAGES) * C::kStage), sb = sa + C::kABytes;
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint64_t da = wgmma::desc_sw128(sa + uint32_t(wg * 64 * 128 + kk * 32), 16, 1024);
#pragma unroll
      for (int nh = 0; nh < NH; ++nh)
        if (nh == 0 || upper)
          wgmma::wgmma_ss<T, 128>(
              acc[nh], da, wgmma::desc_sw128(sb + uint32_t(nh * 128 * 128 + kk * 32), 16, 1024),
              s > 0 || kk > 0 ? 1 : 0);
    }
    wgmma::commit();
    load(s + STAGES - 2);  // into the buffer of step s - 2
    ptx::cp_async_commit();
    wgmma::wait<1>();
  }
  wgmma::wait<0>();
#pragma unroll
  for (int nh = 0; nh < NH; ++nh) wgmma::fence_operands(acc[nh]);

  const auto vis = [&](int i) { return s_vis[i - i0]; };
#pragma unroll
  for (int nh = 0; nh < NH; ++nh)
    if (nh == 0 || upper)
      xattn_block_stats<16, G>(acc[nh], lane, i0 + warp * 16, e0, nh * 128, nqs, nkb,
                               in.scale / float(S), vis, stats);
#endif
}

constexpr int kBN = 256, kStages = 4;

template <class T, int D, int G>
cudaError_t launch(const HeadInputs& in, const Geometry& g, int S, int h0, int heads,
                   const int* visible, GroupStat* stats, cudaStream_t stream) {
  const int nqs = (g.seq_q + S - 1) / S, nks = (g.seq_k + S - 1) / S;
  const dim3 grid(unsigned((nks + kBN - 1) / kBN), unsigned((nqs + kBM - 1) / kBM),
                  unsigned(heads));
  xattn_wgmma_kernel<T, D, kBN, kStages, G>
      <<<grid, kThreads, size_t(XCfg<kBN, kStages>::kSmem), stream>>>(in, g, S, nqs, nks, h0,
                                                                      visible, stats);
  return cudaGetLastError();
}

}  // namespace

bool xattn_wgmma_fits(const HeadInputs& in, int S, int block_k) {
  if (S < 1 || block_k % S != 0) return false;
  const int eb = block_k / S;
  return (eb == 8 || eb == 16 || eb == 32 || eb == 64) && (in.D == 64 || in.D == 128);
}

cudaError_t xattn_wgmma_prepare(const HeadInputs& in, const Geometry& geo, int S) {
  if (!xattn_wgmma_fits(in, S, geo.block_k)) return cudaErrorInvalidValue;
  return xattn_dispatch(in, S, geo.block_k, [&]<class T, int D, int G>() {
    return cudaFuncSetAttribute(xattn_wgmma_kernel<T, D, kBN, kStages, G>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                XCfg<kBN, kStages>::kSmem);
  });
}

cudaError_t xattn_stats_wgmma(const HeadInputs& in, const Geometry& geo, int S, int h0, int heads,
                              const int* visible, GroupStat* stats, cudaStream_t stream) {
  if (!xattn_wgmma_fits(in, S, geo.block_k)) return cudaErrorInvalidValue;
  if (geo.seq_q <= 0 || geo.seq_k <= 0 || heads <= 0) return cudaSuccess;
  return xattn_dispatch(in, S, geo.block_k, [&]<class T, int D, int G>() {
    return launch<T, D, G>(in, geo, S, h0, heads, visible, stats, stream);
  });
}

}  // namespace sieve::attention::cuda::est
