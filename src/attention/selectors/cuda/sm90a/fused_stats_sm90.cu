// The fused statistics kernel of the GPU selectors (estimation_gpu.h: mma_fused) on Hopper's
// warpgroup MMA; compiled only for sm_90a (src/attention/CMakeLists.txt). Same steps, rows and
// epilogue as the mma.sync instance in estimation.cu (fused_stats.cuh), with 128 rows per CTA:
// per step each of the two warpgroups issues one m64n64k16 wgmma chain with its 64 query rows'
// fragments from registers (the register-A layout equals mma.sync's A layout) and the key tile
// from shared memory, read once per CTA (not once per warp), and each tile fetched from L2
// serves 128 rows instead of 64. The key tile is stored in wgmma's K-major 128-byte-swizzle
// layout (64-element panels of 128-byte rows, rows permuted by unit_row as in the mma.sync
// instance, so the accumulator columns hold the same units), and the products of step s + 1 run
// while step s's scores are finished. Four instances: stride_stats_wgmma_kernel (estimate path
// "wgmma"), the warp-specialised stride_stats_ws_kernel ("wgmma-ws"), its ping-pong variant
// stride_stats_pp_kernel ("wgmma-pp"; see its section for why it exists) and the ping-pong kernel
// with TMA key tiles and the lean step, stride_stats_tma_kernel ("wgmma-tma", the default).
#include "../../../cuda/tensor_map_encoder.h"
#include "../fused_stats.cuh"
#include "sieve/attention/cuda/tma.cuh"
#include "sieve/attention/cuda/wgmma.cuh"

#include <cudaTypedefs.h>

#include <cstdlib>
#include <cstring>

namespace sieve::attention::cuda::est::fused {

namespace {

constexpr int kWgWarps = 8, kWgThreads = 32 * kWgWarps, kWgRows = 16 * kWgWarps;

// 64 rows of WB bf16 into the K-major 128-byte-swizzle layout: panel p (elements 64p..64p+63)
// at p * 8 KiB, row n at n * 128 bytes in it, 16-byte chunk c at (c ^ (n & 7)) * 16; rows
// permuted by unit_row.
// Chunk i of the 64 x WB / 8 chunks.
template <int WB>
__device__ __forceinline__ void load_panel_chunk(uint32_t dst, const __nv_bfloat16* src,
                                                 int64_t first_row, int rows_valid, int i) {
  constexpr int chunks = WB / 8;
  const int r = i / chunks, c = i % chunks, rs = unit_row(r);
  const bool ok = r < rows_valid;
  const __nv_bfloat16* g = src + (ok ? (first_row + r) * WB + c * 8 : 0);
  ptx::cp_async_16(dst + uint32_t((c >> 3) * 8192 + rs * 128 + (((c & 7) ^ (rs & 7)) << 4)), g, ok);
}
template <int WB>
__device__ __forceinline__ void load_panels(uint32_t dst, const __nv_bfloat16* src, int64_t first_row,
                                            int rows_valid) {
  for (int i = threadIdx.x; i < 64 * (WB / 8); i += kWgThreads)
    load_panel_chunk<WB>(dst, src, first_row, rows_valid, i);
}

// d (+)= A (registers, 64 x 16) x B^T with B 64 x 16 K-major in shared memory (no transpose).
__device__ __forceinline__ void wgmma_rs_kmajor(float (&d)[8][4], const uint32_t (&a)[4], uint64_t db,
                                                int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, "
      "%9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, "
      "%28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}

// acc = A (the first 16 KS columns) x B^T for the 64-unit tile at sb; issued and committed.
template <int KS, int W>
__device__ __forceinline__ void issue_products(const uint32_t (&a)[W / 16][4], uint32_t sb,
                                               float (&acc)[8][4]) {
  wgmma::fence();
#pragma unroll
  for (int kk = 0; kk < KS; ++kk)
    wgmma_rs_kmajor(acc, a[kk], wgmma::desc_sw128(sb + (kk >> 2) * 8192 + (kk & 3) * 32, 16, 1024),
                    kk > 0 ? 1 : 0);
  wgmma::commit();
}

// issue_products with the descriptors of the KS k-steps formed from the tile's first one: lo is
// the descriptor's low word for the tile at sb, ((sb & 0x3ffff) >> 4) | (16 >> 4) << 16 (the
// leading byte offset), and k-step kk adds ((kk >> 2) * 8192 + (kk & 3) * 32) >> 4 to it, which
// stays inside the 14-bit address field (shared addresses < 256 KB), so the descriptors equal
// wgmma::desc_sw128's (same products); the high word is the constant (1024 >> 4) | 1 << 30.
// One add per k-step instead of desc_sw128's mask / shift / or of each address.
template <int KS, int W>
__device__ __forceinline__ void issue_products_lean(const uint32_t (&a)[W / 16][4], uint32_t lo,
                                                    float (&acc)[8][4]) {
  constexpr uint64_t hi = uint64_t((1024u >> 4) | (1u << 30)) << 32;
  wgmma::fence();
#pragma unroll
  for (int kk = 0; kk < KS; ++kk)
    wgmma_rs_kmajor(acc, a[kk], hi | (lo + uint32_t(((kk >> 2) * 8192 + (kk & 3) * 32) >> 4)),
                    kk > 0 ? 1 : 0);
  wgmma::commit();
}
// The low descriptor word issue_products_lean takes for the tile at shared address sb.
__device__ __forceinline__ uint32_t desc_lo_sw128(uint32_t sb) {
  return ((sb & 0x3ffffu) >> 4) | (1u << 16);
}

// The consumer loop of every instance: step 0's products into acc0, then
// step(s, cur, next) for s = 0.. steps - 1 with the two accumulator sets alternating.
template <class Issue, class Step>
__device__ __forceinline__ void walk_steps(int steps, const Issue& issue, const Step& step) {
  float acc0[8][4], acc1[8][4];
  issue(0, acc0);
  for (int s = 0; s < steps; s += 2) {
    step(s, acc0, acc1);
    if (s + 1 < steps) step(s + 1, acc1, acc0);
  }
  wgmma::wait<0>();  // nothing is in flight here; kept so no wgmma outlives the CTA's registers
}

template <int W, int W2, int GN>
__global__ void __launch_bounds__(kWgThreads, 1)
    stride_stats_wgmma_kernel(StrideProblem pb, int ngroups, int tiles, GroupStat* stats) {
  constexpr int tile_bytes = 64 * 2 * W, KS = W / 16;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = ptx::smem_addr(smem_raw);
  const uint32_t s_base = (raw + 1023u) & ~1023u;  // swizzle atoms need 1024-byte alignment
  // two key tiles, then four steps' log weights, then s_vis
  const float* s_lw = reinterpret_cast<const float*>(smem_raw + (s_base - raw) + 2 * tile_bytes);
  int* s_vis = reinterpret_cast<int*>(smem_raw + (s_base - raw) + 2 * tile_bytes + 4 * 64 * 4);
  batch_head(pb, stats, int(blockIdx.z));
  // row blocks in reverse: the last rows see the most tiles, so the heaviest CTAs start first
  const int r0 = int(gridDim.y - 1 - blockIdx.y) * kWgRows;
  const int x0 = blockIdx.x * kTiles, x1 = min(x0 + kTiles, tiles);
  const int units = pb.units, R = pb.reps;
  const RowLimits lim = row_limits<kWgWarps>(pb, r0, x0, x1, s_vis);
  if (lim.nt == 0) return;

  const auto* k16 = static_cast<const __nv_bfloat16*>(pb.krep16);
  uint32_t a[KS][4];
  load_query_fragments<W, kWgWarps>(pb, r0, s_base, a);  // 128 rows: both buffers
  // step s scores tile x0 + s / R, slot s % R, from buffer s & 1, log weights in buffer s & 3
  // (step s's epilogue runs after step s + 2's loads were issued)
  const auto load_step = [&](int s) {
    const int x = x0 + s / R, t = s % R;
    const uint32_t dst = s_base + uint32_t((s & 1) * tile_bytes);
    load_log_weights<kWgThreads>(s_base + uint32_t(2 * tile_bytes + (s & 3) * 256), pb, x, t);
    if (t == 0)
      load_panels<W>(dst, k16, int64_t(x) * 64, units - x * 64);
    else
      load_panels<W2>(dst, k16 + int64_t(units) * W + int64_t(t - 1) * units * W2, int64_t(x) * 64,
                      units - x * 64);
  };
  const auto issue = [&](int s, float (&acc)[8][4]) {
    const uint32_t sb = s_base + uint32_t((s & 1) * tile_bytes);
    if (s % R == 0)
      issue_products<KS, W>(a, sb, acc);
    else
      issue_products<W2 / 16, W>(a, sb, acc);
  };
  const int steps = lim.nt * R;
  Running<GN> run;
  // On entry to step s the products of step s are in flight into cur and the key tile of step
  // s + 1 is loading. The barrier after both waits frees buffer s & 1 for step s + 2 and
  // publishes step s + 1's tile to the async proxy; step s + 1's products then run during step
  // s's epilogue.
  const auto step = [&](int s, float (&cur)[8][4], float (&next)[8][4]) {
    ptx::cp_async_wait<0>();
    wgmma::fence_proxy_async();
    wgmma::wait<0>();
    wgmma::fence_operands(cur);
    __syncthreads();
    if (s + 2 < steps) load_step(s + 2);
    ptx::cp_async_commit();
    if (s + 1 < steps) issue(s + 1, next);
    epilogue<GN>(pb, cur, x0 + s / R, s % R, r0, s_vis, s_lw + (s & 3) * 64, lim, ngroups, run,
                 stats);
  };
  load_step(0);
  ptx::cp_async_commit();
  if (steps > 1) load_step(1);
  ptx::cp_async_commit();
  ptx::cp_async_wait<1>();
  wgmma::fence_proxy_async();
  __syncthreads();
  walk_steps(steps, issue, step);
}

template <int W, int W2, int GN>
cudaError_t launch(const StrideProblem& pb, int ngroups, int tiles, GroupStat* stats,
                   cudaStream_t stream) {
  // +1024: alignment; two key tiles, four steps' log weights, s_vis
  const int smem = 1024 + 2 * 64 * 2 * W + 4 * 64 * 4 + kWgRows * 4;
  const cudaError_t e = cudaFuncSetAttribute(stride_stats_wgmma_kernel<W, W2, GN>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const dim3 grid(unsigned((tiles + kTiles - 1) / kTiles),
                  unsigned((pb.nqr + kWgRows - 1) / kWgRows), unsigned(pb.heads));
  stride_stats_wgmma_kernel<W, W2, GN>
      <<<grid, kWgThreads, size_t(smem), stream>>>(pb, ngroups, tiles, stats);
  return cudaGetLastError();
}

template <int W, int W2>
cudaError_t launch(const StrideProblem& pb, int GN, int ngroups, int tiles, GroupStat* stats,
                   cudaStream_t stream) {
  switch (GN) {
    case 1: return launch<W, W2, 1>(pb, ngroups, tiles, stats, stream);
    case 2: return launch<W, W2, 2>(pb, ngroups, tiles, stats, stream);
    case 4: return launch<W, W2, 4>(pb, ngroups, tiles, stats, stream);
    case 8: return launch<W, W2, 8>(pb, ngroups, tiles, stats, stream);
    default: return cudaErrorInvalidValue;
  }
}


// ---- Warp-specialised instance (Fused::kWgmmaWs, estimate path "wgmma-ws") ----------------
// The same steps, rows (two consumer warpgroups x 64) and epilogue as stride_stats_wgmma_kernel,
// with the loads moved to a third, producer warpgroup and the per-step CTA barrier removed:
//  - the producer (threads 256..383, setmaxnreg 40) walks the steps and copies each step's key
//    tile (same swizzled, unit_row-permuted layout as load_panels) and log weights into stage
//    s % kStages of a ring with cp.async; once a step's copies have landed (cp.async.wait_group
//    one step behind) each producer thread fences them for the async proxy and arrives on the
//    stage's full mbarrier (count 128);
//  - each consumer warpgroup (threads 0..255 as before, so the epilogue's row indexing is
//    unchanged; setmaxnreg 232) waits on full[s + 1], issues step s + 1's products, waits for
//    step s's (wgmma.wait_group 1) and runs step s's epilogue; each warp then arrives on the
//    stage's empty mbarrier (count 8), after which the producer may overwrite it.
// The two consumer warpgroups are coupled only through the ring, so one's epilogue (MUFU, FP32)
// can overlap the other's products. (Its own products do not: ptxas serialises this loop's
// wgmmas, see the ping-pong instance below.)
constexpr int kWsStages = 4, kWsThreads = kWgThreads + 128, kWsProducerRegs = 40,
              kWsConsumerRegs = 232;

// 64 rows of WB bf16 into load_panels' layout, copied by the producer's 128 threads (pt).
// Unrolled twice (unrolled four times, the 40-register producer spilled 48 bytes).
template <int WB>
__device__ __forceinline__ void load_panels_ws(uint32_t dst, const __nv_bfloat16* src,
                                               int64_t first_row, int rows_valid, int pt) {
#pragma unroll 2
  for (int i = pt; i < 64 * (WB / 8); i += 128)
    load_panel_chunk<WB>(dst, src, first_row, rows_valid, i);
}

// Thread 0: the ring's mbarriers, full (count 128: every producer thread, once its copies landed)
// then empty (count 8: every consumer warp, once its epilogue read the stage); published by the
// CTA barrier that follows (row_limits).
__device__ __forceinline__ void init_ring_barriers(uint32_t bars) {
  if (threadIdx.x != 0) return;
  for (int s = 0; s < kWsStages; ++s) {
    tma::mbar_init(bars + uint32_t(8 * s), 128);
    tma::mbar_init(bars + uint32_t(8 * (kWsStages + s)), 8);
  }
  tma::mbar_init_fence();
}

// The producer warpgroup of the warp-specialised instances (setmaxnreg down to
// kWsProducerRegs): for steps 0.. steps - 1 of the CTA (tile x0 + s / R, slot s % R) the key tile
// into ring stage s % kWsStages (ring: kWsStages tiles of 64 x 2W bytes at `ring`, log weights
// [kWsStages][64] floats at `lw_ring`) once its empty mbarrier (bars + 8 (kWsStages + stage))
// has passed; once a step's copies have landed (cp.async.wait_group one step behind) each of the
// 128 threads (pt) fences them for the async proxy and arrives on the stage's full mbarrier
// (bars + 8 stage). SKIP_LOADS (diagnostic only, wrong values): steps >= kWsStages copy nothing
// and are published at once, so the consumers score the first kWsStages steps' tiles again.
// The ring walk both producers share: for each step s (tile x0 + s / R, slot t = s % R) wait
// for its stage's empty mbarrier, load(s, x, t, dst, full) issues the step's copies into stage
// dst (full: the stage's full mbarrier), then step s - 1 is published once step s is issued.
// Publishing two steps behind (three steps' copies in flight) was slower on the H200
// (docs/cuda.md): the consumers then wait for the producer to refill a stage before they may
// issue the next step.
// ScaleLw (the epilogue variants, EpiVariant): before publishing step s, producer thread pt < 64
// replaces its log weight (lw_ring stage s % kWsStages, entry pt, copied by itself) with
// __fmul_rn(weight, kLog2e), the product the epilogue forms otherwise (step_log2_weights).
template <int W, bool ScaleLw = false, class Load>
__device__ __forceinline__ void walk_ring(int R, uint32_t ring, uint32_t bars, int x0, int steps,
                                          const Load& load, uint32_t lw_ring = 0, int pt = 0) {
  constexpr int NS = kWsStages, tile_bytes = 64 * 2 * W;
  const auto publish = [&](int s) {  // step s's copies have landed: publish them to the wgmma
    if constexpr (ScaleLw) {
      if (pt < 64) {
        const uint32_t e = lw_ring + uint32_t((s % NS) * 256 + 4 * pt);
        float v;
        asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(e) : "memory");
        asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(e), "f"(__fmul_rn(v, kLog2e)) : "memory");
      }
    }
    wgmma::fence_proxy_async();
    tma::mbar_arrive(bars + uint32_t(8 * (s % NS)));
  };
  for (int s = 0; s < steps; ++s) {
    const uint32_t full = bars + uint32_t(8 * (s % NS)), empty = bars + uint32_t(8 * (NS + s % NS));
    tma::mbar_wait(empty, uint32_t((s / NS) & 1) ^ 1u);  // a fresh ring passes at once
    load(s, x0 + s / R, s % R, ring + uint32_t((s % NS) * tile_bytes), full);
    ptx::cp_async_commit();  // an empty group when nothing was copied: the wait counts stay
    if (s >= 1) {
      ptx::cp_async_wait<1>();
      publish(s - 1);
    }
  }
  ptx::cp_async_wait<0>();
  publish(steps - 1);
}

template <int W, int W2, bool SKIP_LOADS = false>
__device__ __forceinline__ void produce_steps(const StrideProblem& pb, uint32_t ring, uint32_t lw_ring,
                                              uint32_t bars, int x0, int steps, int pt) {
  tma::regs_dec<kWsProducerRegs>();
  const auto* k16 = static_cast<const __nv_bfloat16*>(pb.krep16);
  const int units = pb.units;
  walk_ring<W>(pb.reps, ring, bars, x0, steps, [&](int s, int x, int t, uint32_t dst, uint32_t) {
    if (SKIP_LOADS && s >= kWsStages) return;
    load_log_weights_at(lw_ring + uint32_t((s % kWsStages) * 256), pb, x, t, pt);
    if (t == 0)
      load_panels_ws<W>(dst, k16, int64_t(x) * 64, units - x * 64, pt);
    else
      load_panels_ws<W2>(dst, k16 + int64_t(units) * W + int64_t(t - 1) * units * W2,
                         int64_t(x) * 64, units - x * 64, pt);
  });
}

template <int W, int W2, int GN>
__global__ void __launch_bounds__(kWsThreads, 1)
    stride_stats_ws_kernel(StrideProblem pb, int ngroups, int tiles, GroupStat* stats) {
  constexpr int NS = kWsStages, tile_bytes = 64 * 2 * W, KS = W / 16;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = ptx::smem_addr(smem_raw);
  const uint32_t s_base = (raw + 1023u) & ~1023u;  // swizzle atoms need 1024-byte alignment
  // NS key tiles (the query rows pass through the first ones), NS steps' log weights, s_vis
  // (192 entries: the producer warps' row_limits reads rows 128..191, kept zero), 2 NS mbarriers
  const uint32_t s_lw_addr = s_base + uint32_t(NS * tile_bytes);
  const float* s_lw = reinterpret_cast<const float*>(smem_raw + (s_lw_addr - raw));
  int* s_vis = reinterpret_cast<int*>(smem_raw + (s_lw_addr - raw) + NS * 256);
  const uint32_t bars = s_lw_addr + uint32_t(NS * 256 + 192 * 4);
  const auto full = [&](int s) { return bars + uint32_t(8 * (s % NS)); };
  const auto empty = [&](int s) { return bars + uint32_t(8 * (NS + s % NS)); };
  batch_head(pb, stats, int(blockIdx.z));
  const int r0 = int(gridDim.y - 1 - blockIdx.y) * kWgRows;  // heaviest row blocks first
  const int x0 = blockIdx.x * kTiles, x1 = min(x0 + kTiles, tiles);
  const int R = pb.reps;
  const int tid = int(threadIdx.x), lane = tid & 31;
  init_ring_barriers(bars);
  if (tid >= kWgRows && tid < 192) s_vis[tid] = 0;
  const RowLimits lim = row_limits<kWgWarps>(pb, r0, x0, x1, s_vis);  // CTA barrier inside
  if (lim.nt == 0) return;  // CTA-uniform

  // the 128 query rows through the ring's first tiles into the consumers' fragments
  uint32_t a[KS][4];
  load_rows<W, false, kWsThreads, kWgRows>(s_base, static_cast<const __nv_bfloat16*>(pb.qrep16), r0,
                                           pb.nqr - r0);
  ptx::cp_async_commit();
  ptx::cp_async_wait<0>();
  __syncthreads();
  if (tid < kWgThreads) rows_to_fragments<W>(s_base, a);
  __syncthreads();
  const int steps = lim.nt * R;

  if (tid >= kWgThreads) {  // the producer warpgroup
    produce_steps<W, W2>(pb, s_base, s_lw_addr, bars, x0, steps, tid - kWgThreads);
    return;
  }
  tma::regs_inc<kWsConsumerRegs>();  // ---- consumer warpgroups ----------------------------------
  const auto issue = [&](int s, float (&acc)[8][4]) {
    tma::mbar_wait(full(s), uint32_t((s / NS) & 1));
    const uint32_t sb = s_base + uint32_t((s % NS) * tile_bytes);
    if (s % R == 0)
      issue_products<KS, W>(a, sb, acc);
    else
      issue_products<W2 / 16, W>(a, sb, acc);
  };
  Running<GN> run;
  // On entry to step s the products of step s are in flight into cur. Step s + 1's are issued
  // first (its stage full), then step s's awaited and finished, then its stage released.
  const auto step = [&](int s, float (&cur)[8][4], float (&next)[8][4]) {
    if (s + 1 < steps) {
      issue(s + 1, next);
      wgmma::wait<1>();
    } else {
      wgmma::wait<0>();
    }
    wgmma::fence_operands(cur);
    epilogue<GN>(pb, cur, x0 + s / R, s % R, r0, s_vis, s_lw + (s % NS) * 64, lim, ngroups, run,
                 stats);
    __syncwarp();
    if (lane == 0) tma::mbar_arrive(empty(s));
  };
  walk_steps(steps, issue, step);
}

// ---- Ping-pong instance (Fused::kWgmmaPp, estimate path "wgmma-pp") -----------------------
// stride_stats_ws_kernel issues step s + 1's products and then waits for step s's with
// wgmma.wait_group 1. ptxas cannot tell which accumulators are still in flight after a partial
// wait whose groups were committed in earlier loop iterations, so it serialised every wgmma of
// that kernel (warning C7514: each of the 16 or 8 k-steps of a chain waited for the previous
// one, and no products overlapped an epilogue). This instance waits for everything first and
// then issues the next step (the order of stride_stats_wgmma_kernel, which compiles without
// C7514): per consumer warpgroup and step s
//   wgmma.wait_group 0 (step s's products done; step s + 1's stage full) -> issue step s + 1's
//   chain -> step s's epilogue while it runs -> release stage s.
// With `pingpong` the two consumer warpgroups also take turns issuing their chains (named
// barriers 1 and 2 over 256 threads, warpgroup 0 first, as FlashAttention-3 §3.1), so that one's
// chain runs on the tensor cores while the other finishes its scores. The query rows are staged
// in their own buffer (not the ring), so the producer starts copying key tiles at once. Same
// steps, products (the same wgmma chain) and epilogue as the other instances: the same values.
// The ping-pong instance's schedule (the values do not depend on it): issue turns between the
// consumer warpgroups, 64-unit key tiles per CTA.
struct PpOptions {
  int pingpong = 1, tiles_per_cta = kTiles;
  int diag = 0;  // kDiag* bits (timing diagnostics only; the statistics are then wrong)
};
constexpr int kTmaTiles = 16;  // the TMA instance's tiles_per_cta (launch_fused_tma_sm90)

// Timing diagnostics of the ping-pong instance (SIEVE_STATS_DIAG; W 256, W2 128 only), to tell
// its two candidate limits apart in one job (docs/cuda.md "wgmma-pp"): kDiagNoLoads copies only
// the first kWsStages steps' key tiles and log weights (later steps reuse the ring's stale
// stages: the products and epilogues without the L2 -> shared traffic); kDiagNoProducts issues
// no wgmma (each step's accumulators are opaque zeros: the loads and epilogues without the
// tensor cores); both: the epilogues, barriers and turns alone.
constexpr int kDiagNoLoads = 1, kDiagNoProducts = 2;

// Opaque zeros for kDiagNoProducts (asm volatile, so the epilogue is not folded away).
__device__ __forceinline__ void opaque_zeros(float (&acc)[8][4]) {
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int c = 0; c < 4; ++c) asm volatile("mov.b32 %0, 0;\n" : "=f"(acc[n][c]));
}

// The consumers' step in two forms (SIEVE_STATS_EPI, read by launch_fused_tma_sm90 at every
// launch). Both give the same statistics bit for bit: the same wgmma chains (same descriptors),
// the same f32 operations on the same operands in the same order in the epilogue; only where the
// integers and the log2 weights come from differs.
//  - kEpiLean (the default on the TMA instance since session 7: rr's score kernel 13-15 % faster
//    on the H200, docs/results/gpu-attention.md): the step's tile and slot are counted (x, t)
//    instead of s / R and s % R (an integer division by the runtime R, with MUFU.RCP, I2F and
//    F2I on the pipe the ex2 need, in front of every step's epilogue and issue); the wgmma
//    descriptors are one add per k-step from the stage's (issue_products_lean); the producer
//    writes the log weights pre-multiplied by log2 e (walk_ring's ScaleLw), so the epilogue loads
//    them without 16 FMUL.
//  - kEpiPlain ("plain"; the ping-pong and diagnostic instances always): the step as written
//    first.
// Measured and dropped (same values, docs/results): releasing the ring stage before the epilogue
// ("early") and issuing the next chain between the epilogue's row halves ("split").
enum EpiVariant : int { kEpiPlain = 0, kEpiLean = 1 };

__device__ __forceinline__ void bar_arrive(int id, int count) {
  asm volatile("barrier.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

// The ping-pong CTA (stride_stats_pp_kernel, stride_stats_tma_kernel): the producer warpgroup
// runs produce(s_base, s_lw_addr, bars, x0, steps, pt) (ring, log-weight ring, mbarriers, first
// tile, steps, producer thread), the consumers as described above.
template <int W, int W2, int GN, int DIAG, int EPI = kEpiPlain, class Produce>
__device__ __forceinline__ void pp_cta(StrideProblem& pb, int ngroups, int tiles, GroupStat* stats,
                                       const PpOptions& opt, const Produce& produce) {
  constexpr int NS = kWsStages, tile_bytes = 64 * 2 * W, KS = W / 16;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = ptx::smem_addr(smem_raw);
  const uint32_t s_base = (raw + 1023u) & ~1023u;  // swizzle atoms need 1024-byte alignment
  // NS key tiles, the 128 query rows, NS steps' log weights, s_vis (192), 2 NS mbarriers
  const uint32_t s_q = s_base + uint32_t(NS * tile_bytes);
  const uint32_t s_lw_addr = s_q + uint32_t(kWgRows * 2 * W);
  const float* s_lw = reinterpret_cast<const float*>(smem_raw + (s_lw_addr - raw));
  int* s_vis = reinterpret_cast<int*>(smem_raw + (s_lw_addr - raw) + NS * 256);
  const uint32_t bars = s_lw_addr + uint32_t(NS * 256 + 192 * 4);
  batch_head(pb, stats, int(blockIdx.z));
  const int r0 = int(gridDim.y - 1 - blockIdx.y) * kWgRows;  // heaviest row blocks first
  const int x0 = blockIdx.x * opt.tiles_per_cta, x1 = min(x0 + opt.tiles_per_cta, tiles);
  const int R = pb.reps;
  const int tid = int(threadIdx.x), lane = tid & 31;
  const bool pingpong = opt.pingpong != 0;
  init_ring_barriers(bars);
  if (tid >= kWgRows && tid < 192) s_vis[tid] = 0;
  const RowLimits lim = row_limits<kWgWarps>(pb, r0, x0, x1, s_vis);  // CTA barrier inside
  if (lim.nt == 0) return;  // CTA-uniform
  const int steps = lim.nt * R;

  if (tid >= kWgThreads) {  // the producer warpgroup
    produce(s_base, s_lw_addr, bars, x0, steps, tid - kWgThreads);
    return;
  }
  tma::regs_inc<kWsConsumerRegs>();  // ---- consumer warpgroups ----------------------------------
  // the 128 query rows into the fragments (named barrier 3: the consumers only)
  uint32_t a[KS][4];
  load_rows<W, false, kWgThreads, kWgRows>(s_q, static_cast<const __nv_bfloat16*>(pb.qrep16), r0,
                                           pb.nqr - r0);
  ptx::cp_async_commit();
  ptx::cp_async_wait<0>();
  tma::bar_sync<3, kWgThreads>();
  rows_to_fragments<W>(s_q, a);
  // Turns: warpgroup g issues after `barrier.sync 1 + g`, then lets the other one go. Each
  // issues `steps` chains; warpgroup 1 opens warpgroup 0's first turn and skips its last
  // arrival, so every arrival is consumed.
  const int wg = tid >> 7;
  if (pingpong && wg == 1) bar_arrive(1, kWgThreads);
  const auto issue = [&](int s, float (&acc)[8][4]) {
    tma::mbar_wait(bars + uint32_t(8 * (s % NS)), uint32_t((s / NS) & 1));
    if (pingpong) tma::bar_sync_id<kWgThreads>(1 + wg);
    const uint32_t sb = s_base + uint32_t((s % NS) * tile_bytes);
    if constexpr ((DIAG & kDiagNoProducts) != 0)
      opaque_zeros(acc);
    else if (s % R == 0)
      issue_products<KS, W>(a, sb, acc);
    else
      issue_products<W2 / 16, W>(a, sb, acc);
    if (pingpong && (wg == 0 || s + 1 < steps)) bar_arrive(2 - wg, kWgThreads);
  };
  Running<GN> run;
  if constexpr (EPI == kEpiPlain) {
    // On entry to step s the products of step s are in flight into cur (nothing else is).
    const auto step = [&](int s, float (&cur)[8][4], float (&next)[8][4]) {
      wgmma::wait<0>();
      wgmma::fence_operands(cur);
      if (s + 1 < steps) issue(s + 1, next);
      epilogue<GN>(pb, cur, x0 + s / R, s % R, r0, s_vis, s_lw + (s % NS) * 64, lim, ngroups, run,
                   stats);
      __syncwarp();
      if (lane == 0) tma::mbar_arrive(bars + uint32_t(8 * (NS + s % NS)));
    };
    walk_steps(steps, issue, step);
  } else {  // EpiVariant: the same chains and epilogue arithmetic, scheduled as described there
    static_assert(DIAG == 0, "the epilogue variants have no diagnostic instances");
    const uint32_t lo0 = desc_lo_sw128(s_base);
    int xe = x0, te = 0;  // tile and slot of the step being finished
    int ti = 0;           // slot of the step being issued
    const auto issue_lean = [&](int s, float (&acc)[8][4]) {
      tma::mbar_wait(bars + uint32_t(8 * (s % NS)), uint32_t((s / NS) & 1));
      if (pingpong) tma::bar_sync_id<kWgThreads>(1 + wg);
      const uint32_t lo = lo0 + uint32_t((s % NS) * (tile_bytes >> 4));
      if (ti == 0)
        issue_products_lean<KS, W>(a, lo, acc);
      else
        issue_products_lean<W2 / 16, W>(a, lo, acc);
      if (pingpong && (wg == 0 || s + 1 < steps)) bar_arrive(2 - wg, kWgThreads);
    };
    const auto step = [&](int s, float (&cur)[8][4], float (&next)[8][4]) {
      wgmma::wait<0>();
      wgmma::fence_operands(cur);
      ti = te + 1 == R ? 0 : te + 1;
      const float* lw_s = s_lw + (s % NS) * 64;
      const uint32_t empty = bars + uint32_t(8 * (NS + s % NS));
      if (s + 1 < steps) issue_lean(s + 1, next);
      if (xe * 64 < lim.warp_maxv) {
        float lw[8][2];
        step_log2_weights<true>(lw_s, lw);
        epilogue_lw<GN>(pb, cur, xe, te, r0, s_vis, lw, lim, ngroups, run, stats);
      }
      __syncwarp();
      if (lane == 0) tma::mbar_arrive(empty);
      xe += ti == 0 ? 1 : 0;
      te = ti;
    };
    walk_steps(steps, issue_lean, step);
  }
}

template <int W, int W2, int GN, int DIAG = 0>
__global__ void __launch_bounds__(kWsThreads, 1)
    stride_stats_pp_kernel(StrideProblem pb, int ngroups, int tiles, GroupStat* stats,
                           PpOptions opt) {
  const StrideProblem& cpb = pb;  // the producer reads the batch head's arrays (pp_cta set them)
  pp_cta<W, W2, GN, DIAG>(pb, ngroups, tiles, stats, opt,
                          [&](uint32_t ring, uint32_t lw_ring, uint32_t bars, int x0, int steps,
                              int pt) {
                            produce_steps<W, W2, (DIAG & kDiagNoLoads) != 0>(cpb, ring, lw_ring,
                                                                             bars, x0, steps, pt);
                          });
}

// ---- TMA instance (StrideProblem::Fused::kWgmmaTma, estimate path "wgmma-tma") --------------------
// stride_stats_pp_kernel with each step's key tile copied by TMA (one bulk tensor copy per
// 64-column panel, issued by one producer thread) instead of 128 threads' 16-byte cp.async:
// FlashAttention-3 moves its K/V tiles at the same 128 FLOP per byte at ~18 bytes per clock and
// SM with TMA, against ~6.8 measured for this ring (docs/cuda.md "wgmma-pp"). The unit_row
// permutation is done by the tensor map itself: the tile's row r = 16 a + 2 b + c (a < 4,
// b < 8, c < 2) goes to shared row unit_row(r) = 8 b + 2 a + c, so a 5-D map whose dimensions
// are, innermost first, (column, c, a, b, key set) with box (64, 2, 4, 8, 1) writes the box in
// exactly that order (the 128-byte swizzle is a function of the shared address, as in
// load_panel_chunk). Dimension a runs over all 16-unit groups of a slot (slot 0) or of all outlier
// slots one after another (rest), so the representatives keep their layout; this needs
// units % 16 == 0 (the launcher falls back to the cp.async ring otherwise, same values). Rows
// past `units` in a partial tile are zeros (slot 0, last outlier slot) or the next slot's first
// rows (finite; their columns are -inf in the epilogue, which selects, never adds, there), so
// the statistics equal stride_stats_pp_kernel's. Log weights as before (4-byte cp.async); the full
// mbarrier keeps count 128 and producer thread 0 adds the tile's bytes (expect_tx) before
// issuing the copies, i.e. before its own arrival for that step.
struct KeyMaps {
  CUtensorMap slot0;  // [key set][units / 16][8][2][W], see above
  CUtensorMap rest;   // the outlier slots [key set][(reps - 1) units / 16][8][2][W2] (reps > 1)
};

__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void load_5d(uint32_t dst, const CUtensorMap* tmap, uint32_t bar, int c0,
                                        int c1, int c2, int c3, int c4) {
  asm volatile(
      "cp.async.bulk.tensor.5d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4, %5, %6}], [%7];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(tmap)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4), "r"(bar)
      : "memory");
}

// produce_steps with the key tiles by TMA (key set kz of the maps); the log weights and the
// full / empty protocol unchanged.
template <int W, int W2, bool ScaleLw = false>
__device__ __forceinline__ void produce_steps_tma(const StrideProblem& pb, const KeyMaps& maps,
                                                  int kz, uint32_t ring, uint32_t lw_ring,
                                                  uint32_t bars, int x0, int steps, int pt) {
  tma::regs_dec<kWsProducerRegs>();
  const int groups = pb.units / 16;
  if (pt == 0) {
    tma::prefetch_map(&maps.slot0);
    if (pb.reps > 1) tma::prefetch_map(&maps.rest);
  }
  walk_ring<W, ScaleLw>(pb.reps, ring, bars, x0, steps, [&](int s, int x, int t, uint32_t dst,
                                                            uint32_t full) {
    load_log_weights_at(lw_ring + uint32_t((s % kWsStages) * 256), pb, x, t, pt);
    if (pt != 0) return;
    if (t == 0) {
      mbar_expect_tx(full, uint32_t(64 * 2 * W));
#pragma unroll
      for (int p = 0; p < W / 64; ++p)
        load_5d(dst + uint32_t(p * 8192), &maps.slot0, full, 64 * p, 0, 4 * x, 0, kz);
    } else {
      mbar_expect_tx(full, uint32_t(64 * 2 * W2));
#pragma unroll
      for (int p = 0; p < W2 / 64; ++p)
        load_5d(dst + uint32_t(p * 8192), &maps.rest, full, 64 * p, 0, (t - 1) * groups + 4 * x,
                0, kz);
    }
  }, lw_ring, pt);
}

template <int W, int W2, int GN, int EPI = kEpiPlain>
__global__ void __launch_bounds__(kWsThreads, 1)
    stride_stats_tma_kernel(StrideProblem pb, int ngroups, int tiles, GroupStat* stats,
                            PpOptions opt,
                            const __grid_constant__ KeyMaps maps) {
  const StrideProblem& cpb = pb;
  // the key set of this head (KeyMaps' dimension 4; one set when z_krep is 0, whatever kgroup)
  const int kz = pb.z_krep == 0 ? 0 : int(blockIdx.z) / pb.kgroup;
  pp_cta<W, W2, GN, 0, EPI>(pb, ngroups, tiles, stats, opt,
                            [&](uint32_t ring, uint32_t lw_ring, uint32_t bars, int x0, int steps,
                                int pt) {
                              produce_steps_tma<W, W2, EPI != kEpiPlain>(
                                  cpb, maps, kz, ring, lw_ring, bars, x0, steps, pt);
                            });
}

// PP: the ping-pong instance (its query buffer outside the ring), else the warp-specialised one.
// DIAG: the ping-pong instance's timing diagnostics (PpOptions::diag).
template <int W, int W2, int GN, bool PP, int DIAG = 0>
cudaError_t launch_ws(const StrideProblem& pb, int ngroups, int tiles, GroupStat* stats,
                      cudaStream_t stream, const PpOptions& opt) {
  // +1024: alignment; the ring, (PP) the query rows, the log weights, s_vis, the mbarriers
  const int smem = 1024 + kWsStages * (64 * 2 * W + 256) + (PP ? kWgRows * 2 * W : 0) + 192 * 4 +
                   2 * kWsStages * 8;
  const auto kernel = [] {
    if constexpr (PP) return stride_stats_pp_kernel<W, W2, GN, DIAG>;
    else return stride_stats_ws_kernel<W, W2, GN>;
  }();
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const int tpc = PP ? opt.tiles_per_cta : kTiles;
  const dim3 grid(unsigned((tiles + tpc - 1) / tpc), unsigned((pb.nqr + kWgRows - 1) / kWgRows),
                  unsigned(pb.heads));
  if constexpr (PP)
    kernel<<<grid, kWsThreads, size_t(smem), stream>>>(pb, ngroups, tiles, stats, opt);
  else
    kernel<<<grid, kWsThreads, size_t(smem), stream>>>(pb, ngroups, tiles, stats);
  return cudaGetLastError();
}

template <int W, int W2, bool PP, int DIAG = 0>
cudaError_t launch_ws(const StrideProblem& pb, int GN, int ngroups, int tiles, GroupStat* stats,
                      cudaStream_t stream, const PpOptions& opt) {
  switch (GN) {
    case 1: return launch_ws<W, W2, 1, PP, DIAG>(pb, ngroups, tiles, stats, stream, opt);
    case 2: return launch_ws<W, W2, 2, PP, DIAG>(pb, ngroups, tiles, stats, stream, opt);
    case 4: return launch_ws<W, W2, 4, PP, DIAG>(pb, ngroups, tiles, stats, stream, opt);
    case 8: return launch_ws<W, W2, 8, PP, DIAG>(pb, ngroups, tiles, stats, stream, opt);
    default: return cudaErrorInvalidValue;
  }
}

// The diagnostic instances exist for (W 256, W2 128) only (rr and unisparse at D 128, the shapes
// issue 4 measures); any other shape under a diagnostic fails (cudaErrorInvalidValue) rather
// than silently timing the normal kernel.
cudaError_t launch_pp_diag(const StrideProblem& pb, int W, int W2, int GN, int ngroups, int tiles,
                           GroupStat* stats, cudaStream_t stream, const PpOptions& opt) {
  if (W != 256 || W2 != 128) return cudaErrorInvalidValue;
  switch (opt.diag) {
    case kDiagNoLoads:
      return launch_ws<256, 128, true, kDiagNoLoads>(pb, GN, ngroups, tiles, stats, stream, opt);
    case kDiagNoProducts:
      return launch_ws<256, 128, true, kDiagNoProducts>(pb, GN, ngroups, tiles, stats, stream, opt);
    case kDiagNoLoads | kDiagNoProducts:
      return launch_ws<256, 128, true, kDiagNoLoads | kDiagNoProducts>(pb, GN, ngroups, tiles,
                                                                          stats, stream, opt);
    default: return cudaErrorInvalidValue;
  }
}

template <bool PP>
cudaError_t launch_ws(const StrideProblem& pb, int W, int W2, int GN, int ngroups, int tiles,
                      GroupStat* stats, cudaStream_t stream, const PpOptions& opt = {}) {
  if (W == 256 && W2 == 128)
    return launch_ws<256, 128, PP>(pb, GN, ngroups, tiles, stats, stream, opt);
  if (W == 128 && W2 == 128)
    return launch_ws<128, 128, PP>(pb, GN, ngroups, tiles, stats, stream, opt);
  if (W == 128 && W2 == 64)
    return launch_ws<128, 64, PP>(pb, GN, ngroups, tiles, stats, stream, opt);
  return cudaErrorInvalidValue;
}

// stride_stats_tma_kernel for (W, W2, GN): launch_ws<W, W2, GN, true>'s shared memory and grid.
template <int W, int W2, int GN, int EPI = kEpiPlain>
cudaError_t launch_tma(const StrideProblem& pb, int ngroups, int tiles, GroupStat* stats,
                       cudaStream_t stream, const PpOptions& opt, const KeyMaps& maps) {
  const int smem = 1024 + kWsStages * (64 * 2 * W + 256) + kWgRows * 2 * W + 192 * 4 +
                   2 * kWsStages * 8;
  const auto kernel = stride_stats_tma_kernel<W, W2, GN, EPI>;
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const int tpc = opt.tiles_per_cta;
  const dim3 grid(unsigned((tiles + tpc - 1) / tpc), unsigned((pb.nqr + kWgRows - 1) / kWgRows),
                  unsigned(pb.heads));
  kernel<<<grid, kWsThreads, size_t(smem), stream>>>(pb, ngroups, tiles, stats, opt, maps);
  return cudaGetLastError();
}

template <int W, int W2, int EPI = kEpiPlain>
cudaError_t launch_tma(const StrideProblem& pb, int GN, int ngroups, int tiles, GroupStat* stats,
                       cudaStream_t stream, const PpOptions& opt, const KeyMaps& maps) {
  switch (GN) {
    case 1: return launch_tma<W, W2, 1, EPI>(pb, ngroups, tiles, stats, stream, opt, maps);
    case 2: return launch_tma<W, W2, 2, EPI>(pb, ngroups, tiles, stats, stream, opt, maps);
    case 4: return launch_tma<W, W2, 4, EPI>(pb, ngroups, tiles, stats, stream, opt, maps);
    case 8: return launch_tma<W, W2, 8, EPI>(pb, ngroups, tiles, stats, stream, opt, maps);
    default: return cudaErrorInvalidValue;
  }
}

// launch_tma<W, W2> under an epilogue variant (EpiVariant; runtime value to instance).
template <int W, int W2>
cudaError_t launch_tma_epi(int epi, const StrideProblem& pb, int GN, int ngroups, int tiles,
                           GroupStat* stats, cudaStream_t stream, const PpOptions& opt,
                           const KeyMaps& maps) {
  switch (epi) {
    case kEpiPlain: return launch_tma<W, W2>(pb, GN, ngroups, tiles, stats, stream, opt, maps);
    case kEpiLean:
      return launch_tma<W, W2, kEpiLean>(pb, GN, ngroups, tiles, stats, stream, opt, maps);
    default: return cudaErrorInvalidValue;
  }
}

// An integer schedule knob from the environment: fallback when unset, empty or outside [lo, hi].
int knob(const char* name, int fallback, int lo, int hi) {
  const char* env = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  const int v = env != nullptr && *env != '\0' ? std::atoi(env) : fallback;
  return v < lo || v > hi ? fallback : v;
}

// SIEVE_STATS_EPI: unset, empty or "lean" -> kEpiLean, "plain" -> kEpiPlain; anything else -1 (the
// launch then fails with cudaErrorInvalidValue rather than timing the default silently).
int epi_variant_from_env() {
  const char* env = std::getenv("SIEVE_STATS_EPI");  // NOLINT(concurrency-mt-unsafe)
  if (env == nullptr || *env == '\0' || std::strcmp(env, "lean") == 0) return kEpiLean;
  if (std::strcmp(env, "plain") == 0) return kEpiPlain;
  return -1;
}

// KeyMaps' map of one slot width: rows of `width` bf16 at `base`, `groups` 16-row groups, key
// sets `set_stride` elements apart (sets of them). Dimensions (column, c, a, b, key set) as
// described at KeyMaps; every stride is a multiple of 16 bytes since width >= 64 and
// units % 16 == 0. Zeros outside the tensor (groups past the last).
bool encode_key_map(CUtensorMap* m, const void* base, int width, int64_t groups, int sets,
                    int64_t set_stride) {
  const auto fn = detail::tensor_map_encoder();
  if (!fn) return false;
  const cuuint64_t row = cuuint64_t(width) * 2;
  const cuuint64_t dims[5] = {cuuint64_t(width), 2, cuuint64_t(groups), 8, cuuint64_t(sets)};
  const cuuint64_t strides[4] = {row, 16 * row, 2 * row, cuuint64_t(set_stride) * 2};
  const cuuint32_t box[5] = {64, 2, 4, 8, 1};
  const cuuint32_t elem[5] = {1, 1, 1, 1, 1};
  return fn(m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 5, const_cast<void*>(base), dims, strides, box,
            elem, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

cudaError_t launch_fused_sm90(const StrideProblem& pb, int W, int W2, int GN, int ngroups, int tiles,
                              GroupStat* stats, cudaStream_t stream) {
  if (W == 256 && W2 == 128) return launch<256, 128>(pb, GN, ngroups, tiles, stats, stream);
  if (W == 128 && W2 == 128) return launch<128, 128>(pb, GN, ngroups, tiles, stats, stream);
  if (W == 128 && W2 == 64) return launch<128, 64>(pb, GN, ngroups, tiles, stats, stream);
  return cudaErrorInvalidValue;
}

cudaError_t launch_fused_ws_sm90(const StrideProblem& pb, int W, int W2, int GN, int ngroups,
                                 int tiles, GroupStat* stats, cudaStream_t stream) {
  return launch_ws<false>(pb, W, W2, GN, ngroups, tiles, stats, stream);
}

cudaError_t launch_fused_pp_sm90(const StrideProblem& pb, int W, int W2, int GN, int ngroups,
                                 int tiles, GroupStat* stats, cudaStream_t stream) {
  // Schedule knobs for A/B runs (the values are the same under any of them):
  // SIEVE_STATS_PINGPONG=0 (no issue turns), SIEVE_STATS_TILES=n (tiles per CTA, 1..64).
  // Timing diagnostics (wrong values; PpOptions::diag): SIEVE_STATS_DIAG=1 (no key-tile loads
  // after the first ring), 2 (no products), 3 (neither).
  PpOptions opt;
  opt.pingpong = knob("SIEVE_STATS_PINGPONG", opt.pingpong, 0, 1);
  opt.tiles_per_cta = knob("SIEVE_STATS_TILES", opt.tiles_per_cta, 1, 64);
  opt.diag = knob("SIEVE_STATS_DIAG", 0, 0, kDiagNoLoads | kDiagNoProducts);
  if (opt.diag != 0) return launch_pp_diag(pb, W, W2, GN, ngroups, tiles, stats, stream, opt);
  return launch_ws<true>(pb, W, W2, GN, ngroups, tiles, stats, stream, opt);
}

cudaError_t launch_fused_tma_sm90(const StrideProblem& pb, int W, int W2, int GN, int ngroups,
                                  int tiles, GroupStat* stats, cudaStream_t stream) {
  // Unit counts off the 16-unit groups: the ping-pong instance (the same values).
  if (pb.units % 16 != 0) return launch_fused_pp_sm90(pb, W, W2, GN, ngroups, tiles, stats, stream);
  const int sets = pb.z_krep == 0 ? 1 : (pb.heads + pb.kgroup - 1) / pb.kgroup;
  const int R = pb.reps, rest_width = R > 1 ? W2 : 0;
  // one key set's elements (its stride when the batch has one set: never used, any valid value)
  const int64_t set_elems = int64_t(pb.units) * (W + int64_t(R - 1) * rest_width);
  const int64_t set_stride = pb.z_krep == 0 ? set_elems : pb.z_krep;
  KeyMaps maps{};
  const auto* k16 = static_cast<const __nv_bfloat16*>(pb.krep16);
  if (!encode_key_map(&maps.slot0, k16, W, pb.units / 16, sets, set_stride) ||
      (R > 1 && !encode_key_map(&maps.rest, k16 + int64_t(pb.units) * W, W2,
                                int64_t(R - 1) * pb.units / 16, sets, set_stride)))
    return cudaErrorInvalidValue;  // no encoder, or a map the driver rejects: reported, no fallback
  // Issue turns as the ping-pong instance, but 16 key tiles per CTA instead of its 8: half the
  // CTAs, so half the fixed prologues (rr's selector 4 % faster at 32K and 8 % at 128K,
  // unisparse unchanged; H200, sessions 23-24, docs/results/gpu-attention.md).
  PpOptions opt;
  opt.tiles_per_cta = kTmaTiles;
  opt.pingpong = knob("SIEVE_STATS_PINGPONG", opt.pingpong, 0, 1);  // A/B knobs, same values
  opt.tiles_per_cta = knob("SIEVE_STATS_TILES", opt.tiles_per_cta, 1, 64);
  // Epilogue variant (A/B knob, same values): SIEVE_STATS_EPI=lean (default) | plain.
  const int epi = epi_variant_from_env();
  if (W == 256 && W2 == 128)
    return launch_tma_epi<256, 128>(epi, pb, GN, ngroups, tiles, stats, stream, opt, maps);
  if (W == 128 && W2 == 128)
    return launch_tma_epi<128, 128>(epi, pb, GN, ngroups, tiles, stats, stream, opt, maps);
  if (W == 128 && W2 == 64)
    return launch_tma_epi<128, 64>(epi, pb, GN, ngroups, tiles, stats, stream, opt, maps);
  return cudaErrorInvalidValue;
}

}  // namespace sieve::attention::cuda::est::fused
