// Warp-specialised Hopper path of the attention executor (FlashAttention-3 structure, sm_90a):
// the tile walk, masking and online softmax of flash_kernel.cuh, with a producer warpgroup that
// loads tiles by TMA and two consumer warpgroups that run both products on wgmma.
//
// A CTA (384 threads, one per SM) owns BLOCK_M = 128 query rows of Fa3Args::tiles_per_cta query
// heads (work tiles, one after another; Q double-buffered so the next tile's Q and first K/V
// tiles load while the current one runs; 1 for token columns). Warpgroup 0
// is the producer: one thread walks TileIter, writes each tile's (kind, first key) into a slot of
// a STAGES-deep shared-memory ring and issues `cp.async.bulk.tensor` copies of the K and V tiles
// (BLOCK_N x D, two 64-column panels each, 128-byte swizzle: the layout of flash_kernel_sm90.cuh;
// each V copy one ring use after the next K copy) against per-stage "full" mbarriers; it waits on "empty" mbarriers that the consumers' warps
// arrive at once a stage has been read. Warpgroups 1 and 2 own 64 rows each (setmaxnreg: 24
// registers for the producer, 240 for the consumers) and run FA3's intra-warpgroup pipeline:
// S_j = Q K_j^T is issued together with O += P_{j-1} V_{j-1}, the softmax of S_j runs while
// P_{j-1} V_{j-1} is in flight, and O is rescaled after its wait. The end of the walk is a slot
// with kind -1. Out-of-range keys arrive as zeros (TMA fill). Without token columns, causal/edge
// tiles are masked by one key bound per row, and each consumer writes its normalised O rows into
// its own (finished) rows of Q's buffer and stores them with TMA (O in T with strides a tensor
// map can describe; otherwise per-thread stores); each tile's walk ends with a marker use of the
// ring (kind -1) that cycles all four of its stage's barriers. FA3's ping-pong scheduling (named
// barriers ordering the two consumers' GEMM issues) and a third K/V stage were measured within
// noise of this on an H200 and removed (docs/results/gpu-attention.md, commit d1fc33f).
// FA3's persistent schedule (one CTA per SM claiming work tiles from an atomic counter) was
// measured slower than this grid schedule on an H200 and removed (docs/cuda.md, fa3 kernel).
// Token columns, by default (staged; flash_fa3.cu's launch_staged): a pre-pass copies the keys and
// values of every column-list entry into two row-contiguous buffers, and the grid kernel reads a
// column tile (BLOCK_N list entries from the CTA's first) from them by TMA like a contiguous tile.
// The producer's thread 0 classifies it (classify_staged_columns): plain tiles need no mask; the
// others (the list's end, the band edge, listed keys next to computed blocks) are masked per entry
// by the consumers, from the ids in global memory and a shared-memory bitmap of the work tile's
// computed key blocks. Under SIEVE_FA3_COLUMNS=gather, instance COLUMNS (one work tile per CTA)
// gathers instead: the whole producer warpgroup walks the tiles. Thread 0 issues the TMA copies of
// contiguous tiles as above; a column tile takes all 128 threads: thread r resolves list entry r
// (prepare_columns' rule) and gathers row r of K and V by cp.async, the no-mask flag comes from
// barrier.red.and, and thread 0 arrives on the stage's full barriers once every copy has landed
// and been published to the async proxy. Both ways give the same bits. Needs
// block_k % BLOCK_N == 0.
// Reference: Shah et al., "FlashAttention-3" (2024), §3.1 (producer/consumer warp
// specialisation) and §3.2 (intra-warpgroup pipelining).
#pragma once

#include "sieve/attention/cuda/flash_kernel.cuh"
#include "sieve/attention/cuda/flash_kernel_sm90.cuh"
#include "sieve/attention/cuda/tma.cuh"
#include "sieve/attention/cuda/wgmma.cuh"

#include <cuda.h>  // CUtensorMap (a plain struct; nothing links the driver library)

namespace sieve::attention::cuda {

/// COLUMNS_: the instance for patterns with token columns. Its producer warpgroup gathers column
/// tiles, so it keeps 56 registers and the consumers get 224 (otherwise 24 and 240; 128 x
/// producer + 256 x consumer <= 65536 registers per SM), and each stage adds the column tile's
/// key ids and no-mask flag after the slots.
template <class T_, int D_, int BN_, int STAGES_, bool COLUMNS_ = false>
struct FlashConfigFa3 {
  using T = T_;
  static constexpr int kD = D_, kBN = BN_, kBM = 128, kStages = STAGES_;
  static constexpr bool kColumns = COLUMNS_;
  static constexpr int kProducerRegs = COLUMNS_ ? 56 : 24, kConsumerRegs = COLUMNS_ ? 224 : 240;
  static constexpr int kThreads = 384;  // producer warpgroup + two consumer warpgroups
  static constexpr int kQBytes = kBM * D_ * 2, kTileBytes = BN_ * D_ * 2;
  // Barriers: full_q and empty_q per Q buffer (two: a CTA may own several work tiles, the next
  // tile's Q loads while the current one runs), full/empty x K/V per stage.
  static constexpr int kBarBytesGrid = 8 * (4 + 4 * STAGES_);
  // Grid kernel: a bitmap of the work tile's computed key blocks after the slots (the masks of
  // staged column tiles), kBitmapWords words.
  static constexpr int kBitmapWords = 256;
  static constexpr int kSmemBytes = 1024 + 2 * kQBytes + 2 * STAGES_ * kTileBytes + kBarBytesGrid +
                                    8 * STAGES_ +  // +1024: alignment
                                    (COLUMNS_ ? STAGES_ * (4 * BN_ + 4) : 4 * kBitmapWords);
  static_assert(D_ == 128 && BN_ == 128, "the FA3 path is built for head dim 128, BLOCK_N 128");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block");
};

/// Kernel arguments: the launch description and the TMA tensor maps of Q, K and V (3-D: head dim,
/// sequence, heads; box 64 x 128 x 1, 128-byte swizzle). The grid kernel without token columns
/// also takes the map of O (box 64 x 64 x 1; used when tma_store: O is T, not f32, and its
/// strides fit a map) and, in the instrumented instance (TIMING), the stamp buffer.
struct Fa3Args {
  FlashParams p;
  CUtensorMap tq, tk, tv;
  CUtensorMap to;
  uint64_t* stamps = nullptr;  // kFa3Stamps per CTA (blockIdx.y * gridDim.x + blockIdx.x)
  bool tma_store = false;
  // Grid kernel: work tiles per CTA, the query heads blockIdx.y * tiles_per_cta + j (j <
  // tiles_per_cta, below num_heads_q) of query block blockIdx.x, one after another. 1 for the
  // column and instrumented instances.
  int tiles_per_cta = 1;
  // Token columns in the grid kernel (staged): the maps of the staged copy of the listed keys
  // and their values (stage_columns in flash_fa3.cu: row e = K / V row columns[e] of its pattern
  // head's KV head; 3-D like tk / tv with one head), read by TMA at a column tile's first entry.
  CUtensorMap tkc, tvc;
  bool staged_columns = false;
};

/// Stamp slots per CTA of the instrumented grid kernel (TIMING; clock64 unless noted): 0 entry,
/// 1 after the CTA barrier, 2 first K copy issued, 3 producer done (thread 0); 4 Q landed, 5 K0
/// landed, 6 S0 landed, 7 P0 packed, 8 end marker seen, 9 last P V done, 10 epilogue done
/// (thread 128); 11 epilogue done (thread 256); 12 tiles; 13 SM id; 14 / 15 globaltimer (ns) at
/// 0 / 10.
inline constexpr int kFa3Stamps = 16;

namespace detail {

/// Column instance: key ids of the stages' column tiles, [S][BN], then their no-mask flags, [S];
/// they follow the S tile slots in shared memory.
template <class Cfg>
__device__ __forceinline__ int* fa3_column_ids(Tile* slots) {
  return reinterpret_cast<int*>(slots + Cfg::kStages);
}

/// Column tile t into stage s (ring use with parity ph), run by all 128 producer threads (tid
/// 0..127); kv_bars: the stages' barriers, full_k, full_v, empty_k, empty_v (S words each). Thread
/// r resolves list entry t.c0 + r by prepare_columns' rule (-1: past the list's end or inside a
/// computed block) into s_col[s][r]; warp w then gathers its 32 rows of K and V, two rows per
/// cp.async round, each row's 16 chunks by 16 lanes (key ids by shuffle, so every row is one
/// coalesced 256-byte read). Keys outside [0, seq_k) land as zeros.
/// Synchronisation: only thread 0 follows the ring's phases (the other threads skip the
/// contiguous tiles before the first column tile), so it waits for the stage to be free and
/// named barrier 1 hands the stage to the 128 threads. Each thread waits for its own cp.async
/// group and publishes it to the async proxy (wgmma reads the tiles); barrier.red.and over the
/// 128 then also yields the no-mask flag, and thread 0 stores slot and flag and arrives once on
/// each full barrier (count 1). __syncwarp() before each named barrier: lanes of a warp leave the
/// data-dependent search (and warp 0's thread 0 the TMA branch) apart, and every warp reaches the
/// barrier converged. Nothing else in the kernel uses barrier 1.
template <class Cfg>
__device__ __forceinline__ void fa3_gather_columns(const Tile& t, int s, uint32_t ph,
                                                   const TileIter<Cfg::kBN>& it,
                                                   const FlashParams& p, int hkv, uint32_t s_k,
                                                   uint32_t s_v, uint32_t kv_bars, Tile* slots) {
  using T = typename Cfg::T;
  constexpr int BN = Cfg::kBN, S = Cfg::kStages, C = Cfg::kD / 8;
  static_assert(BN == 128 && C == 16, "one resolving thread per row, 16 lanes per row");
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  int* s_col = fa3_column_ids<Cfg>(slots);

  // Resolve this thread's entry while the stage may still be in use.
  const int j = resolve_column(t.c0 + tid, it, p);
  const bool plain = column_is_plain(j, it, p);
  if (tid == 0) {
    tma::mbar_wait(kv_bars + 8 * (2 * S + s), ph ^ 1u);  // empty_k(s)
    tma::mbar_wait(kv_bars + 8 * (3 * S + s), ph ^ 1u);  // empty_v(s)
  }
  __syncwarp();
  tma::bar_sync<1, 128>();

  s_col[s * BN + tid] = j;
  const T* gk = static_cast<const T*>(p.k) + hkv * p.k_head_stride;
  const T* gv = static_cast<const T*>(p.v) + hkv * p.v_head_stride;
  const uint32_t dk = s_k + s * Cfg::kTileBytes, dv = s_v + s * Cfg::kTileBytes;
  const int ch = lane & 15;
#pragma unroll
  for (int k = 0; k < 16; ++k) {
    const int src = 2 * k + (lane >> 4), r = warp * 32 + src;
    const int jr = __shfl_sync(0xffffffffu, j, src);
    const bool ok = jr >= 0 && jr < p.seq_k;
    const int64_t row = ok ? int64_t(jr) : 0;
    ptx::cp_async_16(dk + pswz<BN>(r, ch), gk + row * p.k_row_stride + ch * 8, ok);
    ptx::cp_async_16(dv + pswz<BN>(r, ch), gv + row * p.v_row_stride + ch * 8, ok);
  }
  ptx::cp_async_commit();
  ptx::cp_async_wait<0>();
  wgmma::fence_proxy_async();
  __syncwarp();
  const bool all_plain = tma::bar_and<1, 128>(plain);
  if (tid == 0) {
    slots[s] = t;
    s_col[S * BN + s] = all_plain;
    tma::mbar_arrive(kv_bars + 8 * s);        // full_k(s)
    tma::mbar_arrive(kv_bars + 8 * (S + s));  // full_v(s)
  }
}

/// The mask of a kMasked tile (key_kept for kMasked: 0 <= j < seq_k and, if causal, j <= pos) as
/// one bound per row on the tile-local key n = j - c0: the same scores as mask_stripe, without
/// its per-element kind tests.
template <int NT>
__device__ __forceinline__ void fa3_mask_bound(float (&s)[NT][4], int c0, int pos0, int tq,
                                               const FlashParams& p) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int pos = pos0 + 8 * h;
    const int lim = (p.causal ? min(pos, p.seq_k - 1) : p.seq_k - 1) - c0;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 2 * h; e < 2 * h + 2; ++e)
        if (nt * 8 + 2 * tq + (e & 1) > lim) s[nt][e] = -INFINITY;
  }
}

/// store_stripe's O / l in T, written into row `rl` (and rl + 8) of a [D/64][BM][128 B] swizzled
/// tile at s_o (the layout Q arrived in) for a TMA store, plus the LSE as store_stripe writes it.
/// One 4-byte word per (row, 8-column group) and thread: the 32 lanes hit 32 banks.
template <class T, int D, int BM>
__device__ __forceinline__ void fa3_stage_o(const float (&o)[D / 8][4], const float (&m)[2],
                                            const float (&l)[2], uint32_t s_o, int rl, int r0,
                                            int hq, int tq, float sl2, const FlashParams& p) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float lr = quad_row_sum(l[h]);
    const float inv = lr > 0.f ? 1.f / lr : 0.f;
    const int r = rl + h * 8;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      const uint32_t w = ptx::pack2<T>(o[dt][2 * h] * inv, o[dt][2 * h + 1] * inv);
      asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(s_o + pswz<BM>(r, dt) + 4 * tq), "r"(w)
                   : "memory");
    }
    const int row = r0 + r;
    if (p.lse && tq == 0 && row < p.seq_q)
      p.lse[hq * p.lse_head_stride + int64_t(row) * p.lse_row_stride] = row_lse(m[h], lr, sl2);
  }
}

}  // namespace detail

/// TIMING: the instrumented instance (stamps as listed at kFa3Stamps; flash_fa3.cu builds it only
/// with -DSIEVE_FA3_TIMING=1). Otherwise no instruction of the instrumentation is emitted.
template <class Cfg, bool TIMING = false>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    flash_attention_fa3_kernel(const __grid_constant__ Fa3Args a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = typename Cfg::T;
  constexpr int D = Cfg::kD, BN = Cfg::kBN, BM = Cfg::kBM, S = Cfg::kStages;
  constexpr uint32_t kTileBytes = Cfg::kTileBytes, kPanelBytes = BN * 128;
  constexpr bool kTiming = TIMING;
  static_assert(!TIMING || !Cfg::kColumns, "the instrumented instance has no token columns");
  const FlashParams& p = a.p;
  // Stamp k of this CTA (TIMING only).
  const auto tick = [&](int k) {
    if constexpr (kTiming)
      a.stamps[(int64_t(blockIdx.y) * gridDim.x + blockIdx.x) * kFa3Stamps + k] = clock64();
  };
  const auto put = [&](int k, uint64_t v) {
    if constexpr (kTiming)
      a.stamps[(int64_t(blockIdx.y) * gridDim.x + blockIdx.x) * kFa3Stamps + k] = v;
  };
  const auto gtimer = [] {
    uint64_t t = 0;
    if constexpr (kTiming) asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
  };

  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = ptx::smem_addr(smem_raw);
  const uint32_t s_q0 = (raw + 1023u) & ~1023u;  // two Q buffers
  const uint32_t s_k = s_q0 + 2 * Cfg::kQBytes;  // S stages
  const uint32_t s_v = s_k + S * kTileBytes;
  const uint32_t bars = s_v + S * kTileBytes;
  const auto s_q = [&](int b) { return s_q0 + uint32_t(b) * Cfg::kQBytes; };
  const auto full_q = [&](int b) { return bars + 8 * b; };
  const auto empty_q = [&](int b) { return bars + 8 * (2 + b); };
  const auto full_k = [&](int s) { return bars + 8 * (4 + s); };
  const auto full_v = [&](int s) { return bars + 8 * (4 + S + s); };
  const auto empty_k = [&](int s) { return bars + 8 * (4 + 2 * S + s); };
  const auto empty_v = [&](int s) { return bars + 8 * (4 + 3 * S + s); };
  detail::Tile* slots =
      reinterpret_cast<detail::Tile*>(smem_raw + (bars - raw) + Cfg::kBarBytesGrid);
  static_assert(sizeof(detail::Tile) == 8, "slot size (kSmemBytes)");

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m_tile = p.num_m_tiles - 1 - int(blockIdx.x);  // heaviest causal tiles first
  const int r0 = m_tile * BM;
  // Work tiles of this CTA: query heads hq0 .. hq0 + ntiles - 1 of query block m_tile. Each
  // tile's walk ends with a marker use of the K/V ring (slot kind -1) that cycles all four of its
  // stage's barriers, so every use of a stage is one phase of each of them and the ring's phases
  // run on across tiles: ring use i (counted over the CTA's tiles) is stage i % S, parity
  // (i / S) & 1. Consumer warps release a use only after waiting on its full barrier and the
  // producer signals use i only after all eight released use i - S, so arrivals for two uses of
  // one barrier never mix. Tile j's Q sits in buffer j % 2, loaded once the epilogue of tile
  // j - 2 has released it.
  constexpr bool kOneTile = Cfg::kColumns || kTiming;  // one work tile per CTA, known at compile time
  const int tpc = kOneTile ? 1 : a.tiles_per_cta;
  const int hq0 = int(blockIdx.y) * tpc;
  const int ntiles = kOneTile ? 1 : min(tpc, p.num_heads_q - hq0);

  if (tid == 0) {
    if constexpr (kTiming) {
      tick(0);
      put(13, [] { uint32_t v; asm volatile("mov.u32 %0, %%smid;" : "=r"(v)); return v; }());
      put(14, gtimer());
    }
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      tma::mbar_init(full_q(b), 1);
      tma::mbar_init(empty_q(b), 2);  // one arrival per consumer warpgroup
    }
#pragma unroll
    for (int s = 0; s < S; ++s) {
      tma::mbar_init(full_k(s), 1);
      tma::mbar_init(full_v(s), 1);
      tma::mbar_init(empty_k(s), 8);  // one arrival per consumer warp
      tma::mbar_init(empty_v(s), 8);
    }
    tma::mbar_init_fence();
  }
  __syncthreads();

  if (warp < 4) {  // ---- producer warpgroup: one thread issues everything ------------------------
    tma::regs_dec<Cfg::kProducerRegs>();
    if (!Cfg::kColumns && tid != 0) return;
    if (tid == 0) {
      tick(1);
      tma::prefetch_map(&a.tk);
      tma::prefetch_map(&a.tv);
      if (a.staged_columns) {
        tma::prefetch_map(&a.tkc);
        tma::prefetch_map(&a.tvc);
      }
    }
    const int rows = min(BM, p.seq_q - r0);
    // V copies run one ring use behind the K copies in the grid kernel (order K_0, K_1, V_0, K_2,
    // V_1, ...): the consumers want K_{n+1} (for S_{n+1}) before V_n (for P_n V_n), and V_n's
    // stage frees only once P_{n-2} V_{n-2} has retired. With K and V of a use issued together,
    // K_{n+1} waited behind that; at a work tile's start (the previous tile's last P V and its
    // epilogue) the next tile's second K tile then landed late. No wait can close a cycle: V_n is
    // issued after K_{n+1}, whose stage the consumers free at S_{n-1}'s mask, before they need
    // V_n. On an H200, 32K at density 0.114: 1.90-1.94 -> 1.83-1.88 ms, dense unchanged
    // (docs/results/gpu-attention.md, session 18). The column instance issues V with its K (its
    // column tiles copy both at once).
    struct VCopy {
      int s = -1;  // stage; -1: none pending
      uint32_t ph = 0;
      int c0 = 0;
      const void* map = nullptr;  // nullptr: the marker (one arrival, no copy)
      int head = 0;
    };
    VCopy pending_v;
    const auto issue_v = [&] {
      const VCopy v = pending_v;
      if (v.s < 0) return;
      pending_v.s = -1;
      tma::mbar_wait(empty_v(v.s), v.ph ^ 1u);
      if (v.map == nullptr) {
        tma::mbar_arrive(full_v(v.s));
        return;
      }
      tma::mbar_arrive_expect_tx(full_v(v.s), kTileBytes);
#pragma unroll
      for (int c = 0; c < D / 64; ++c)
        tma::load_3d(s_v + v.s * kTileBytes + c * kPanelBytes, v.map, full_v(v.s), c * 64, v.c0,
                     v.head);
    };
    // V of the use whose K was just issued: now (column instance) or after the next K.
    const auto next_v = [&](const VCopy& v) {
      if constexpr (Cfg::kColumns) {
        pending_v = v;
        issue_v();
      } else {
        issue_v();
        pending_v = v;
      }
    };
    int i = 0;  // ring use, across the CTA's tiles
    for (int j = 0; j < ntiles; ++j) {
      const int hq = hq0 + j, hkv = hq / p.group, b = j & 1;
      if (tid == 0) {
        if (j >= 2) tma::mbar_wait(empty_q(b), uint32_t((j >> 1) - 1) & 1u);
        tma::mbar_arrive_expect_tx(full_q(b), Cfg::kQBytes);
#pragma unroll
        for (int c = 0; c < D / 64; ++c)
          tma::load_3d(s_q(b) + c * (BM * 128), &a.tq, full_q(b), c * 64, r0, hq);
      }
      detail::TileIter<BN> it = detail::make_tile_iter<BN>(p, hq, r0, rows);
      for (;; ++i) {
        const int s = i % S;
        const uint32_t ph = uint32_t(i / S) & 1u;
        detail::Tile t;
        const bool has = it.next(t);  // the same walk in every producer thread
        if constexpr (Cfg::kColumns) {
          if (has && t.kind == detail::kColumns) {
            detail::fa3_gather_columns<Cfg>(t, s, ph, it, p, hkv, s_k, s_v, full_k(0), slots);
            continue;
          }
          // Contiguous tiles (all before the first column tile) and the end are thread 0's; the
          // others go straight on to the column tiles and wait there at the first named barrier.
          if (tid != 0) {
            if (!has) return;
            continue;
          }
        }
        // Grid kernel with staged columns: a column tile is a TMA copy of BN rows of the staged
        // keys at its first list entry, classified (plain or masked) before it is published.
        bool staged = false;
        if constexpr (!Cfg::kColumns) {
          if (has && t.kind == detail::kColumns) {
            detail::classify_staged_columns<BN>(t, it, p);
            staged = true;
          }
        }
        const void* map_k = staged ? static_cast<const void*>(&a.tkc) : &a.tk;
        const void* map_v = staged ? static_cast<const void*>(&a.tvc) : &a.tv;
        const int head_kv = staged ? 0 : hkv;
        tma::mbar_wait(empty_k(s), ph ^ 1u);
        if (!has) {  // the marker: one phase of each of the stage's barriers, no copy
          slots[s].kind = -1;
          tma::mbar_arrive(full_k(s));
          next_v({s, ph, 0, nullptr, 0});
          ++i;
          break;
        }
        slots[s] = t;
        tma::mbar_arrive_expect_tx(full_k(s), kTileBytes);
#pragma unroll
        for (int c = 0; c < D / 64; ++c)
          tma::load_3d(s_k + s * kTileBytes + c * kPanelBytes, map_k, full_k(s), c * 64, t.c0,
                       head_kv);
        if constexpr (kTiming) {
          if (i == 0) tick(2);
        }
        next_v({s, ph, t.c0, map_v, head_kv});
      }
    }
    issue_v();  // the last marker's V phase
    tick(3);
  } else {  // ---- consumer warpgroups ---------------------------------------------------------
    tma::regs_inc<Cfg::kConsumerRegs>();
    const int cw = (warp >> 2) - 1;  // consumer 0 or 1: rows [64 cw, 64 cw + 64)
    const int g = lane >> 2, tq = lane & 3;
    const int wrow = cw * 64 + (warp & 3) * 16;  // first row of this warp inside the CTA tile
    const float sl2 = p.scale_log2;
    const auto release = [&](uint32_t bar) {
      __syncwarp();
      if (lane == 0) tma::mbar_arrive(bar);
    };
    // Column instance: the mask reads the stage's key ids and flag, so K's stage (whose release
    // lets the producer rewrite them) is released after the mask instead of before it.
    const int* s_col = detail::fa3_column_ids<Cfg>(slots);
    // Grid kernel: the bitmap of the work tile's computed key blocks (staged columns).
    uint32_t* s_bitmap = reinterpret_cast<uint32_t*>(slots + S);
    // TIMING: the consumers' stamps, from thread 128.
    const auto ctick = [&](int k) {
      if constexpr (kTiming) {
        if (tid == 128) tick(k);
      }
    };

    int i = 0;  // ring use, across the CTA's tiles
    for (int j = 0; j < ntiles; ++j) {
      const int hq = hq0 + j, b = j & 1;
      // Staged columns: the CSR row of this work tile and its bitmap in shared memory (bit kb:
      // key block kb is computed by the row), built by the 256 consumer threads between named
      // barrier 4's phases (the first: both warpgroups are done with the previous tile's bitmap),
      // for the masks of kColumnsStaged tiles.
      int row_begin = 0, row_end = 0;
      if (!Cfg::kColumns && p.sparse && p.column_indptr) {
        const int prow = (hq / p.pattern_head_div) * p.num_q_blocks + r0 / p.block_q;
        row_begin = __ldg(p.block_indptr + prow);
        row_end = __ldg(p.block_indptr + prow + 1);
        const int ct = tid - 128;  // 0..255
        __syncwarp();
        tma::bar_sync<4, 256>();
        for (int w = ct; w < Cfg::kBitmapWords; w += 256) s_bitmap[w] = 0u;
        tma::bar_sync<4, 256>();
        for (int e = row_begin + ct; e < row_end; e += 256) {
          const int kb = __ldg(p.block_indices + e);
          if (kb < 32 * Cfg::kBitmapWords) atomicOr(s_bitmap + (kb >> 5), 1u << (kb & 31));
        }
        __syncwarp();
        tma::bar_sync<4, 256>();
      }
      const auto release_k_then_mask = [&](float (&s)[BN / 8][4], const detail::Tile& t, int st) {
        if constexpr (Cfg::kColumns) {
          if (detail::tile_masked(t, s_col + S * BN + st))
            detail::mask_stripe<BN / 8>(s, t, r0 + wrow + g + p.q_offset, s_col + st * BN, tq, p);
          release(empty_k(st));
        } else {
          release(empty_k(st));
          const int kind = t.kind & 0xff;
          if (kind == detail::kMasked)
            detail::fa3_mask_bound<BN / 8>(s, t.c0, r0 + wrow + g + p.q_offset, tq, p);
          else if (kind == detail::kColumnsStaged)
            detail::mask_staged_columns<BN / 8>(s, t, r0 + wrow + g + p.q_offset, tq, s_bitmap,
                                                32 * Cfg::kBitmapWords, row_begin, row_end, p);
          else if (kind != detail::kFull && kind != detail::kColumnsPlain)
            detail::mask_stripe<BN / 8>(s, t, r0 + wrow + g + p.q_offset, nullptr, tq, p);
        }
      };

      float o[D / 8][4];
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[dt][e] = 0.f;
      float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

      const uint32_t q_wg = s_q(b) + cw * 64 * 128;
      const auto issue_pv = [&](const uint32_t (&pa)[BN / 16][4], uint32_t sv) {
        wgmma::fence_operands(o);
        wgmma::fence();
        detail::issue_pv<T, D, BN>(o, pa, sv);
        wgmma::commit();
      };

      tma::mbar_wait(full_q(b), uint32_t(j >> 1) & 1u);  // also with no tile: no copy outlives the CTA
      ctick(4);
      int st = i % S;
      uint32_t ph = uint32_t(i / S) & 1u;
      tma::mbar_wait(full_k(st), ph);
      ctick(5);
      detail::Tile t = slots[st];
      if constexpr (kTiming) {
        if (tid == 128) put(12, 0);
      }
      if (t.kind >= 0) {
        float s[BN / 8][4];
        detail::issue_qk<T, D, BM, BN>(s, q_wg, s_k + st * kTileBytes);
        wgmma::wait<0>();
        wgmma::fence_operands(s);
        ctick(6);
        release_k_then_mask(s, t, st);
        detail::online_softmax<BN / 8, D / 8>(s, o, m, l, sl2);
        uint32_t pa[BN / 16][4];
        detail::pack_p<T, BN>(s, pa);
        ctick(7);

        int prev = st;  // stage of the tile whose P is in pa
        uint32_t prev_ph = ph;
        for (int n = 1;; ++n) {
          ++i;
          st = i % S;
          ph = uint32_t(i / S) & 1u;
          tma::mbar_wait(full_k(st), ph);
          t = slots[st];
          if (t.kind < 0) {
            if constexpr (kTiming) {
              if (tid == 128) put(12, uint64_t(n));
            }
            ctick(8);
            break;
          }
          // S_i and P_{i-1} V_{i-1} issued together
          detail::issue_qk<T, D, BM, BN>(s, q_wg, s_k + st * kTileBytes);
          tma::mbar_wait(full_v(prev), prev_ph);
          issue_pv(pa, s_v + prev * kTileBytes);
          wgmma::wait<1>();  // S_i landed; P_{i-1} V_{i-1} may still run
          wgmma::fence_operands(s);
          release_k_then_mask(s, t, st);
          float alpha[2];
          detail::online_softmax_p<BN / 8>(s, m, l, sl2, alpha);
          wgmma::wait<0>();
          wgmma::fence_operands(o);
          wgmma::fence_operands(pa);
          release(empty_v(prev));
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[dt][e] *= alpha[e >> 1];
          detail::pack_p<T, BN>(s, pa);
          prev = st;
          prev_ph = ph;
        }
        release(empty_k(st));  // the marker's K phase
        // P V of the last tile
        tma::mbar_wait(full_v(prev), prev_ph);
        issue_pv(pa, s_v + prev * kTileBytes);
        wgmma::wait<0>();
        wgmma::fence_operands(o);
        wgmma::fence_operands(pa);
        release(empty_v(prev));
        ctick(9);
      } else {
        release(empty_k(st));  // a tile without key blocks: the marker came first
      }
      // The marker's V phase (the producer arrives once the stage's previous V was released).
      tma::mbar_wait(full_v(st), ph);
      release(empty_v(st));
      // The ring count is the same in every lane, but after the walk's data-dependent exit ptxas
      // may no longer prove it warp-uniform, and then builds the next tile's barrier addresses
      // and wgmma descriptors in vector registers (R2UR before each HGMMA). REDUX writes a
      // uniform register.
      i = int(__reduce_max_sync(0xffffffffu, unsigned(i + 1)));
      if (!Cfg::kColumns && a.tma_store) {
        // This warpgroup's Q rows are free (its last Q K^T has completed): O goes there, laid out
        // as Q arrived, and two TMA stores (one per 64-column panel) write the 64 rows; rows past
        // seq_q fall outside the map and are not written. Replaces 32 scattered 4-byte global
        // stores per thread (each warp store touching 8 rows' lines); with the bound mask below
        // this cut about 3 us per CTA on the H200 (docs/results/gpu-attention.md).
        detail::fa3_stage_o<T, D, BM>(o, m, l, s_q(b), wrow + g, r0, hq, tq, sl2, p);
        wgmma::fence_proxy_async();  // the generic-proxy stores, before the TMA (async proxy) reads
        __syncwarp();
        tma::bar_sync_id<128>(2 + cw);  // named barriers 2 and 3: one per consumer warpgroup
        if ((tid & 127) == 0) {
#pragma unroll
          for (int c = 0; c < D / 64; ++c)
            tma::store_3d(&a.to, q_wg + c * (BM * 128), c * 64, r0 + cw * 64, hq);
          tma::bulk_commit();
          tma::bulk_wait_read();  // Q's buffer (and the CTA's memory) stays until the copies read it
          tma::mbar_arrive(empty_q(b));
        }
      } else {
        detail::store_stripe<T, D / 8>(o, m, l, r0 + wrow + g, hq, tq, sl2, p);
        if constexpr (!Cfg::kColumns) {  // (the column instance owns one tile per CTA)
          __syncwarp();
          tma::bar_sync_id<128>(2 + cw);  // every warp of this warpgroup is done with Q's buffer
          if ((tid & 127) == 0) tma::mbar_arrive(empty_q(b));
        }
      }
    }
    if constexpr (kTiming) {
      if (tid == 128) {
        tick(10);
        put(15, gtimer());
      }
      if (tid == 256) tick(11);
    }
  }
#else
  __trap();  // built without sm_90a: the host never launches this (launch returns an error first)
#endif
}

}  // namespace sieve::attention::cuda
