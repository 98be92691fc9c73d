// Hopper path of the attention executor: the tile walk, masking and online softmax of
// flash_kernel.cuh with both matrix products on warpgroup MMA (wgmma, sm_90a).
//
// A CTA is two warpgroups (256 threads); warpgroup w owns query rows [64w, 64w+64) of the CTA's
// BLOCK_M = 128. S = Q K^T is wgmma with both operands in shared memory (K-major, 128-byte
// swizzle); O += P V takes P from registers (the S accumulators, packed to bf16/f16) and V from
// shared memory as an MN-major operand, so V needs no transpose. Tiles arrive by cp.async (double
// buffered, all threads), made visible to the async proxy with fence.proxy.async. Shared tiles
// are stored as 64-element panels of 128-byte rows, XOR-swizzled in 16-byte chunks by row % 8:
// the layout wgmma's 128-byte swizzle mode reads. Same semantics, parameters and tile sequence
// as the mma.sync kernel (FlashParams, TileIter); needs block_k % BLOCK_N == 0 for patterns.
// Other main-loop schedules (FA3 intra-warpgroup pipelining, two barriers per tile) were measured
// within 2 % or slower on an H200 and removed (docs/results/gpu-attention.md, commit c0dd52c).
// Reference: Shah et al., "FlashAttention-3" (2024), §3.1-3.2 (without warp specialisation/TMA).
#pragma once

#include "sieve/attention/cuda/flash_kernel.cuh"
#include "sieve/attention/cuda/wgmma.cuh"

namespace sieve::attention::cuda {

template <class T_, int D_, int BN_, int MIN_BLOCKS_ = 1>
struct FlashConfigSm90 {
  using T = T_;
  static constexpr int kD = D_, kBN = BN_, kBM = 128, kThreads = 256, kMinBlocks = MIN_BLOCKS_;
  static constexpr int kChunks = D_ / 8;
  static constexpr int kQBytes = kBM * D_ * 2, kTileBytes = BN_ * D_ * 2;
  static constexpr int kSmemBytes = 1024 + kQBytes + 4 * kTileBytes + (2 * BN_ + 2) * 4;  // +1024: align
  static_assert(D_ % 64 == 0 && (BN_ == 64 || BN_ == 128) && (D_ == 64 || D_ == 128));
};

namespace detail {
/// Byte offset of 16-byte chunk c of row r in a [D/64 panels][R rows][128 B] tile.
template <int R>
__device__ __forceinline__ uint32_t pswz(int r, int c) {
  return uint32_t((c >> 3) * (R * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

/// S = Q K^T for one warpgroup on the tensor cores, issued and committed, not awaited; both
/// operands K-major panel tiles: q_wg = the warpgroup's first row in a [D/64][BM][128 B] Q tile,
/// sk = a [D/64][BN][128 B] K tile.
template <class T, int D, int BM, int BN>
__device__ __forceinline__ void issue_qk(float (&s)[BN / 8][4], uint32_t q_wg, uint32_t sk) {
  wgmma::fence();
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const uint32_t qa = q_wg + (kk >> 2) * (BM * 128) + (kk & 3) * 32;
    const uint32_t ka = sk + (kk >> 2) * (BN * 128) + (kk & 3) * 32;
    wgmma::wgmma_ss<T, BN>(s, wgmma::desc_sw128(qa, 16, 1024), wgmma::desc_sw128(ka, 16, 1024),
                           kk > 0 ? 1 : 0);
  }
  wgmma::commit();
}

/// O += P V, issued, not committed: P from registers, V (a [D/64][BN][128 B] tile at sv) as an
/// MN-major operand, so V needs no transpose.
template <class T, int D, int BN>
__device__ __forceinline__ void issue_pv(float (&o)[D / 8][4], const uint32_t (&pa)[BN / 16][4],
                                         uint32_t sv) {
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk)
    wgmma::wgmma_rs<T, D>(o, pa[kk], wgmma::desc_sw128(sv + kk * 16 * 128, BN * 128, 1024), 1);
}

/// P (f32 score accumulators) packed to T: the register-A fragments of the P V product.
template <class T, int BN>
__device__ __forceinline__ void pack_p(const float (&s)[BN / 8][4], uint32_t (&pa)[BN / 16][4]) {
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk) {
    pa[kk][0] = ptx::pack2<T>(s[2 * kk][0], s[2 * kk][1]);
    pa[kk][1] = ptx::pack2<T>(s[2 * kk][2], s[2 * kk][3]);
    pa[kk][2] = ptx::pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    pa[kk][3] = ptx::pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
  }
}
}  // namespace detail

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) flash_attention_sm90_kernel(const FlashParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = typename Cfg::T;
  using detail::pswz;
  constexpr int D = Cfg::kD, BN = Cfg::kBN, BM = Cfg::kBM, C = Cfg::kChunks, NT = Cfg::kThreads;
  constexpr uint32_t kTileBytes = Cfg::kTileBytes;

  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = ptx::smem_addr(smem_raw);
  const uint32_t s_q = (raw + 1023u) & ~1023u;  // swizzle atoms need 1024-byte alignment
  const uint32_t s_k = s_q + Cfg::kQBytes;      // 2 stages
  const uint32_t s_v = s_k + 2 * kTileBytes;
  int* s_col = reinterpret_cast<int*>(smem_raw + (s_q - raw) + Cfg::kQBytes + 4 * kTileBytes);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wg = warp >> 2;
  const int g = lane >> 2, tq = lane & 3;
  const int m_tile = p.num_m_tiles - 1 - int(blockIdx.x);
  const int hq = blockIdx.y, hkv = hq / p.group;
  const int r0 = m_tile * BM;
  const int rows = min(BM, p.seq_q - r0);
  const T* gq = static_cast<const T*>(p.q) + hq * p.q_head_stride + int64_t(r0) * p.q_row_stride;
  const T* gk = static_cast<const T*>(p.k) + hkv * p.k_head_stride;
  const T* gv = static_cast<const T*>(p.v) + hkv * p.v_head_stride;
  const int wrow = wg * 64 + (warp & 3) * 16;  // first row of this warp inside the CTA tile

  detail::TileIter<BN> it = detail::make_tile_iter<BN>(p, hq, r0, rows);
  auto prepare_columns = [&](const detail::Tile& t, int stage) {
    detail::prepare_columns<BN>(t, s_col + stage * BN, s_col + 2 * BN + stage, it, p);
  };
  const auto swz_tile = [](int r, int ch) { return pswz<BN>(r, ch); };
  auto load_tile = [&](uint32_t s_dst, const T* gbase, int64_t stride, const detail::Tile& t, int stage) {
    detail::load_tile_async<BN, C, NT>(s_dst, gbase, stride, t, s_col + stage * BN, p.seq_k, swz_tile);
  };

  detail::Tile t0{}, t1{};
  bool has0 = it.next(t0);
  bool has1 = has0 && it.next(t1);
  detail::pipeline_prologue<BM, C, NT>(s_q, gq, p.q_row_stride, rows,
                                       [](int r, int ch) { return pswz<BM>(r, ch); }, s_k, s_v,
                                       kTileBytes, gk, gv, p, has0, has1, t0, t1, prepare_columns,
                                       load_tile);

  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[dt][e] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float sl2 = p.scale_log2;

  const auto mask = [&](float (&s)[BN / 8][4], const detail::Tile& t, int st) {
    if (detail::tile_masked(t, s_col + 2 * BN + st))
      detail::mask_stripe<BN / 8>(s, t, r0 + wrow + g + p.q_offset, s_col + st * BN, tq, p);
  };

  // Per tile: S then P V, each awaited in turn, three CTA barriers. The prologue's four groups
  // hold {Q, K0}, {V0}, {K1}, {V1}; step j commits {K_{j+2}} and {V_{j+2}}.
  for (int step = 0; has0; ++step) {
    const int st = step & 1;
    const uint32_t sk = s_k + st * kTileBytes, sv = s_v + st * kTileBytes;
    ptx::cp_async_wait<3>();
    wgmma::fence_proxy_async();
    __syncthreads();

    float s[BN / 8][4];
    detail::issue_qk<T, D, BM, BN>(s, s_q + wg * 64 * 128, sk);
    wgmma::wait<0>();
    wgmma::fence_operands(s);

    mask(s, t0, st);
    detail::online_softmax<BN / 8, D / 8>(s, o, m, l, sl2);
    uint32_t pa[BN / 16][4];
    detail::pack_p<T, BN>(s, pa);

    ptx::cp_async_wait<2>();
    wgmma::fence_proxy_async();
    __syncthreads();

    detail::Tile t2{};
    const bool has2 = has1 && it.next(t2);
    if (has2) {
      prepare_columns(t2, st);
      load_tile(sk, gk, p.k_row_stride, t2, st);
    }
    ptx::cp_async_commit();
    wgmma::fence_operands(o);
    wgmma::fence();
    detail::issue_pv<T, D, BN>(o, pa, sv);
    wgmma::commit();
    wgmma::wait<0>();
    wgmma::fence_operands(o);
    wgmma::fence_operands(pa);

    __syncthreads();
    if (has2) load_tile(sv, gv, p.v_row_stride, t2, st);
    ptx::cp_async_commit();

    t0 = t1;
    has0 = has1;
    t1 = t2;
    has1 = has2;
  }
  ptx::cp_async_wait<0>();

  detail::store_stripe<T, D / 8>(o, m, l, r0 + wrow + g, hq, tq, sl2, p);
#else
  __trap();  // built without sm_90a: the host never launches this (launch returns an error first)
#endif
}

template <class Cfg>
cudaError_t launch_flash_attention_sm90(FlashParams p, cudaStream_t stream) {
  auto* kernel = &flash_attention_sm90_kernel<Cfg>;
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  if (err != cudaSuccess) return err;
  p.num_m_tiles = (p.seq_q + Cfg::kBM - 1) / Cfg::kBM;
  if (p.num_m_tiles == 0) return cudaSuccess;
  const dim3 grid(unsigned(p.num_m_tiles), unsigned(p.num_heads_q));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda
