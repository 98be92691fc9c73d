// Statistics epilogue shared by the Hopper xattn score kernels (xattn_wgmma.cu, xattn_tma.cu):
// one consumer warp's wgmma accumulators (m64nNk16 f32 layout: thread (gr, tq) = (lane / 4,
// lane % 4) holds rows gr and gr + 8 of the warp's 16 and columns n * 8 + 2 tq + c of each part)
// turned into the statistics group (group_stat.cuh: log2 of the sum of exp(score)) of every key
// block of 8 G entries.
// Scores are scaled by alpha and -inf past a row's visible key strides. A block spans G column
// groups, each held by 4 lanes: in-thread max and sum plus two shuffles each. Both kernels run
// the same wgmmas and this same code, so their statistics are bit-identical. Also their instance
// dispatch (xattn_dispatch).
#pragma once

#include "../group_stat.cuh"
#include "../peers_gpu.h"

#include "sieve/attention/cuda/ptx.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

namespace sieve::attention::cuda::est {

/// One accumulator part of a consumer warp: acc [NG][4] holds keys e0 + col0.. e0 + col0 + 8 NG
/// of rows i_warp.. i_warp + 15 (absolute query strides); vis(i): visible key strides of row i (0
/// past the last stride). Writes stats [nqs][nkb] of the NG / G blocks of these keys (8 G entries
/// each; 8 G divides e0 and col0).
template <int NG, int G, class Vis>
__device__ __forceinline__ void xattn_block_stats(const float (&acc)[NG][4], int lane, int i_warp,
                                                  int e0, int col0, int nqs, int nkb,
                                                  float alpha, const Vis& vis, GroupStat* stats) {
  constexpr int EB = 8 * G;
  static_assert(NG % G == 0, "whole blocks per part");
  const int gr = lane >> 2, tq = lane & 3, kb0 = (e0 + col0) / EB;
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int i = i_warp + gr + rr * 8, v = vis(i);
    GroupStat* srow = stats + int64_t(i) * nkb;
#pragma unroll
    for (int b = 0; b < NG / G; ++b) {
      float x[2 * G];
      float m = -INFINITY;
#pragma unroll
      for (int j = 0; j < G; ++j)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int n = b * G + j, col = col0 + n * 8 + 2 * tq + c;
          const float sc = e0 + col < v ? alpha * acc[n][2 * rr + c] : -INFINITY;
          x[2 * j + c] = sc;
          m = fmaxf(m, sc);
        }
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
      float sum = 0.f;
      const float ml = m * kLog2e;
      if (m != -INFINITY) {
#pragma unroll
        for (int j = 0; j < 2 * G; ++j) sum += ptx::exp2_fast(fmaf(x[j], kLog2e, -ml));
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int kb = kb0 + b;
      if (tq == (b & 3) && i < nqs && kb < nkb)
        srow[kb] = group_stat(ml, sum);
    }
  }
}

/// f.template operator()<T, D, G>() for the kernel instance of these inputs: element type, head
/// dimension 64 / 128 and G = entries per key block / 8 (8, 16, 32 or 64 entries).
template <class F>
cudaError_t xattn_dispatch(const HeadInputs& in, int S, int block_k, const F& f) {
  const auto by_block = [&]<class T, int D>() -> cudaError_t {
    switch (block_k / S) {
      case 8: return f.template operator()<T, D, 1>();
      case 16: return f.template operator()<T, D, 2>();
      case 32: return f.template operator()<T, D, 4>();
      case 64: return f.template operator()<T, D, 8>();
      default: return cudaErrorInvalidValue;
    }
  };
  const auto by_dim = [&]<class T>() -> cudaError_t {
    return in.D == 64 ? by_block.template operator()<T, 64>()
                      : by_block.template operator()<T, 128>();
  };
  return in.bf16 ? by_dim.template operator()<__nv_bfloat16>()
                 : by_dim.template operator()<__half>();
}

}  // namespace sieve::attention::cuda::est
