// FlashAttention-2 style prefill kernel on tensor cores (mma.sync m16n8k16, sm_80+), one template
// for dense and block-sparse attention.
//
// A CTA owns BLOCK_M = WARPS*16*MT query rows of one query head (grid: m-tiles x query heads, the
// heaviest causal tiles first) and walks a sequence of key tiles of BLOCK_N keys produced by
// TileIter: dense = every causally visible tile; sparse = the pattern's CSR blocks, then the
// local band minus selected blocks, then gathered token columns minus selected blocks and band
// (SparsePattern semantics: a key is never counted twice). One online-softmax state (exp2 domain,
// f32) covers all tiles; K/V tiles are double-buffered with cp.async into XOR-swizzled shared
// memory, fragments come from ldmatrix, and P feeds the P.V product from registers (the m16n8
// accumulator layout equals the A-operand layout). Output O (T or f32) and natural-log LSE.
// Reference: Dao, "FlashAttention-2" (2023), Algorithm 1 with the causal/tile masking of §3.1.
#pragma once

#include "sieve/attention/cuda/flash_params.h"
#include "sieve/attention/cuda/ptx.cuh"

#include <cuda_runtime.h>

namespace sieve::attention::cuda {

/// Compile-time tile shape. T: __nv_bfloat16 or __half; D: head dim; BN: keys per tile;
/// WARPS x MT x 16 query rows per CTA; QREG keeps Q fragments in registers for the whole loop;
/// MIN_BLOCKS CTAs per SM bound the register count (launch bounds).
template <class T_, int D_, int BN_, int WARPS_, int MT_, bool QREG_, int MIN_BLOCKS_ = 1>
struct FlashConfig {
  using T = T_;
  static constexpr int kD = D_, kBN = BN_, kWarps = WARPS_, kMT = MT_;
  static constexpr bool kQInRegs = QREG_;
  static constexpr int kMinBlocks = MIN_BLOCKS_;  // CTAs per SM to fit (caps registers)
  static constexpr int kBM = WARPS_ * 16 * MT_;
  static constexpr int kThreads = WARPS_ * 32;
  static constexpr int kChunks = D_ / 8;  // 16-byte chunks per row
  static constexpr int kSmemBytes = (kBM * D_ + 4 * BN_ * D_) * 2 + (2 * BN_ + 2) * 4;
  static_assert(D_ % 64 == 0, "head dim must be a multiple of 64 (swizzle spans 8 chunks)");
  static_assert(BN_ % 16 == 0 && BN_ <= kThreads, "BLOCK_N must be a multiple of 16");
  static_assert((BN_ * kChunks) % kThreads == 0 && (kBM * kChunks) % kThreads == 0);
};

namespace detail {

// kColumnsPlain / kColumnsStaged: column tiles of the fa3 grid kernel read from the staged copy
// of the listed keys (stage_columns, flash_fa3.cu) by TMA, classified by classify_staged_columns:
// plain tiles need no mask; a staged tile that does carries its count of list entries in bits 8+
// (kind & 0xff is the kind).
enum TileKind : int {
  kFull = 0,
  kMasked = 1,
  kBand = 2,
  kColumns = 3,
  kColumnsPlain = 4,
  kColumnsStaged = 5
};

struct Tile {
  int kind;
  int c0;  // first key (contiguous kinds) or first entry of the column list (kColumns)
};

/// Byte offset of 16-byte chunk c of row r in a [rows][CHUNKS*8] tile; XOR swizzle over 8 rows
/// makes the 8 row addresses of every ldmatrix phase hit 8 distinct bank groups.
template <int CHUNKS>
__device__ __forceinline__ uint32_t swz(int r, int c) {
  return uint32_t((r * CHUNKS + (c ^ (r & 7))) * 16);
}

/// Enumerates the key tiles of one CTA (uniform across the CTA: every thread runs it).
template <int BN>
struct TileIter {
  const int32_t* indices;
  int seq_k, block_k, kmax, p_lo;
  int band_lo;  // band tiles starting above this key lie in every row's band (no mask needed)
  bool causal, sparse;
  int phase;
  int c, end;                        // dense or band cursor
  int idx, row_begin, row_end, sub, subs, merge;  // CSR cursor
  int col, col_end;                  // column-list cursor
  int cmerge;                        // CSR cursor of classify_staged_columns

  __device__ bool needs_mask(int c0) const {
    return c0 + BN > seq_k || (causal && c0 + BN - 1 > p_lo);
  }

  __device__ bool next(Tile& t) {
    if (!sparse) {
      if (c < end) {
        t.c0 = c;
        t.kind = needs_mask(c) ? kMasked : kFull;
        c += BN;
        return true;
      }
      return false;
    }
    if (phase == 0) {  // blocks of the CSR row, ascending
      while (idx < row_end) {
        const int kb = __ldg(indices + idx);
        const int c0 = kb * block_k + sub * BN;
        if (c0 >= kmax) {  // sorted: every later tile is invisible too
          idx = row_end;
          break;
        }
        if (++sub == subs) {
          sub = 0;
          ++idx;
        }
        t.c0 = c0;
        t.kind = needs_mask(c0) ? kMasked : kFull;
        return true;
      }
      phase = 1;
    }
    if (phase == 1) {  // local band, skipping tiles whose block was selected
      while (c < end) {
        const int c0 = c;
        c += BN;
        const int kb = c0 / block_k;
        while (merge < row_end && __ldg(indices + merge) < kb) ++merge;
        if (merge < row_end && __ldg(indices + merge) == kb) continue;
        t.c0 = c0;
        // inside every row's band, causal for every row, within the keys: computed unmasked
        t.kind = c0 > band_lo && c0 + BN - 1 <= p_lo && c0 + BN <= seq_k ? kFull : kBand;
        return true;
      }
      phase = 2;
    }
    if (col < col_end) {  // gathered columns, BN list entries per tile
      t.c0 = col;
      t.kind = kColumns;
      col += BN;
      return true;
    }
    return false;
  }
};

__device__ __forceinline__ int lower_bound(const int32_t* a, int lo, int hi, int x) {
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (__ldg(a + mid) < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/// Whether key j is kept for a row at absolute position pos within a tile of the given kind.
__device__ __forceinline__ bool key_kept(int kind, int j, int pos, const FlashParams& p) {
  if (j < 0 || j >= p.seq_k) return false;
  if (kind == kBand) return j <= pos && j > pos - p.band;
  bool ok = !p.causal || j <= pos;
  if (kind == kColumns && p.band > 0) ok = ok && !(j <= pos && j > pos - p.band);
  return ok;
}


/// The tile sequence of the CTA owning rows [r0, r0 + rows) of query head hq.
template <int BN>
__device__ __forceinline__ TileIter<BN> make_tile_iter(const FlashParams& p, int hq, int r0, int rows) {
  TileIter<BN> it;
  it.seq_k = p.seq_k;
  it.block_k = p.block_k;
  it.causal = p.causal;
  it.sparse = p.sparse;
  it.p_lo = r0 + p.q_offset;
  const int p_hi = r0 + rows - 1 + p.q_offset;
  it.band_lo = p_hi - p.band;
  it.kmax = p.causal ? min(p.seq_k, p_hi + 1) : p.seq_k;
  it.phase = 0;
  it.c = 0;
  it.end = it.kmax;
  it.indices = p.block_indices;
  it.idx = it.row_begin = it.row_end = it.sub = it.merge = 0;
  it.subs = p.block_k / BN;
  it.col = it.col_end = 0;
  it.cmerge = 0;
  if (p.sparse) {
    const int ph = hq / p.pattern_head_div;
    const int prow = ph * p.num_q_blocks + r0 / p.block_q;
    it.idx = it.row_begin = it.merge = it.cmerge = __ldg(p.block_indptr + prow);
    it.row_end = __ldg(p.block_indptr + prow + 1);
    if (p.band > 0) {
      it.c = (max(0, it.p_lo - p.band + 1) / BN) * BN;
      it.end = min(it.kmax, p_hi + 1);
    } else {
      it.c = it.end = 0;
    }
    if (p.column_indptr) {
      // Causal with a band: a column j > p_hi - band is, for every row of the CTA, either inside
      // its band (computed by the band's tiles) or after it, so the list stops before such keys
      // (a column tile's masked entries would only add exp2(-inf) = 0: same bits without them).
      const int cut = p.causal && p.band > 0 ? min(it.kmax, p_hi - p.band + 1) : it.kmax;
      it.col = __ldg(p.column_indptr + ph);
      it.col_end = lower_bound(p.columns, it.col, __ldg(p.column_indptr + ph + 1), cut);
    }
  }
  return it;
}

/// Key id of entry e of the CTA's column list, or -1 to skip it: past the end of the list, or its
/// key block is in the CSR row (already computed there).
template <int BN>
__device__ __forceinline__ int resolve_column(int e, const TileIter<BN>& it,
                                              const FlashParams& p) {
  if (e >= it.col_end) return -1;
  const int j = __ldg(p.columns + e);
  const int kb = j / p.block_k;
  const int pos = lower_bound(p.block_indices, it.row_begin, it.row_end, kb);
  return pos < it.row_end && __ldg(p.block_indices + pos) == kb ? -1 : j;
}

/// Whether column key j is valid, causal for every row of the CTA and outside every row's band:
/// its scores need no mask.
template <int BN>
__device__ __forceinline__ bool column_is_plain(int j, const TileIter<BN>& it,
                                                const FlashParams& p) {
  return j >= 0 && j < p.seq_k && (!p.causal || j <= it.p_lo) &&
         (p.band <= 0 || j <= it.p_lo - p.band);
}

/// A column tile (kind kColumns, c0 = first list entry) of the fa3 grid kernel, whose keys come
/// from the staged copy of the list: kColumnsPlain when it holds BN entries of the CTA's list, its
/// last (largest) key is plain for every row (column_is_plain; the list is sorted, so every key
/// is) and no block of the CSR row lies between its first and last key's blocks (a listed key in
/// a computed block must not count twice); otherwise kColumnsStaged | entries << 8, masked per
/// entry by mask_staged_columns. Run by the producer's one thread on the tiles in walk order
/// (it.cmerge only moves forward: the tiles' keys ascend).
template <int BN>
__device__ __forceinline__ void classify_staged_columns(Tile& t, TileIter<BN>& it,
                                                        const FlashParams& p) {
  const int n = min(BN, it.col_end - t.c0);
  bool plain = n == BN;
  if (plain) {
    const int last = __ldg(p.columns + t.c0 + BN - 1);
    plain = column_is_plain(last, it, p);
    if (plain && it.cmerge < it.row_end) {
      const int kb0 = __ldg(p.columns + t.c0) / p.block_k, kb1 = last / p.block_k;
      while (it.cmerge < it.row_end && __ldg(p.block_indices + it.cmerge) < kb0) ++it.cmerge;
      plain = !(it.cmerge < it.row_end && __ldg(p.block_indices + it.cmerge) <= kb1);
    }
  }
  t.kind = plain ? kColumnsPlain : (kColumnsStaged | (n << 8));
}

/// The mask of a kColumnsStaged tile (entries t.c0 .. t.c0 + (t.kind >> 8) - 1 of the column list)
/// for one m16 stripe (rows at absolute positions pos0 and pos0 + 8): entry n is key
/// columns[c0 + n] unless past the entries or in a block of the CSR row [row_begin, row_end)
/// (resolve_column's rule), then key_kept as for a gathered column tile. The ids come from global
/// memory (one round of independent loads); the CSR test reads bitmap (bit kb: key block kb is in
/// the row) for kb < bitmap_blocks and searches the row beyond.
template <int NT>
__device__ __forceinline__ void mask_staged_columns(float (&s)[NT][4], const Tile& t, int pos0,
                                                    int tq, const uint32_t* bitmap,
                                                    int bitmap_blocks, int row_begin, int row_end,
                                                    const FlashParams& p) {
  const int n_valid = t.kind >> 8;
  int ids[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int n = nt * 8 + 2 * tq + c;
      ids[nt][c] = n < n_valid ? __ldg(p.columns + t.c0 + n) : -1;
    }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      int j = ids[nt][c];
      if (j >= 0) {
        const int kb = j / p.block_k;
        bool computed;
        if (kb < bitmap_blocks) {
          computed = (bitmap[kb >> 5] >> (kb & 31)) & 1u;
        } else {
          const int at = lower_bound(p.block_indices, row_begin, row_end, kb);
          computed = at < row_end && __ldg(p.block_indices + at) == kb;
        }
        if (computed) j = -1;
      }
#pragma unroll
      for (int h = 0; h < 2; ++h)
        if (!key_kept(kColumns, j, pos0 + 8 * h, p)) s[nt][2 * h + c] = -INFINITY;
    }
}

/// For a column tile: resolves its list entries to key ids in s_col[0, BN) (-1 = skip: past the
/// end of the list, or its block is already computed), visible to all threads after the barrier.
/// *s_plain = whether every key of the tile is valid, causal for every row of the CTA and outside
/// every row's band, i.e. whether its scores need no mask (tile_masked). Uniform across the CTA
/// (the barrier is taken only for column tiles).
template <int BN>
__device__ __forceinline__ void prepare_columns(const Tile& t, int* s_col, int* s_plain,
                                                const TileIter<BN>& it, const FlashParams& p) {
  if (t.kind != kColumns) return;
  bool plain = true;
  if (int(threadIdx.x) < BN) {
    const int j = resolve_column(t.c0 + int(threadIdx.x), it, p);
    s_col[threadIdx.x] = j;
    plain = column_is_plain(j, it, p);
  }
  const int all_plain = __syncthreads_and(plain);
  if (threadIdx.x == 0) *s_plain = all_plain;  // read after the main loop's next barrier
}

/// Whether the scores of tile t (staged with column flag *s_plain) go through mask_stripe.
__device__ __forceinline__ bool tile_masked(const Tile& t, const int* s_plain) {
  return t.kind != kFull && !(t.kind == kColumns && *s_plain);
}

/// cp.async copy of one K or V tile (BN rows x C 16-byte chunks) into shared memory at s_dst, laid
/// out by `swz(row, chunk)` (byte offset). Row r is key t.c0 + r, or s_col[r] for a column tile;
/// keys outside [0, seq_k) (and skipped columns, -1) are zero-filled. Shared by both kernels.
template <int BN, int C, int NT, class T, class Swz>
__device__ __forceinline__ void load_tile_async(uint32_t s_dst, const T* gbase, int64_t stride,
                                                const Tile& t, const int* s_col, int seq_k, Swz swz) {
#pragma unroll
  for (int i = 0; i < BN * C / NT; ++i) {
    const int id = int(threadIdx.x) + i * NT;
    const int r = id / C, ch = id % C;
    const int j = t.kind == kColumns ? s_col[r] : t.c0 + r;
    const bool ok = j >= 0 && j < seq_k;
    ptx::cp_async_16(s_dst + swz(r, ch), gbase + (ok ? int64_t(j) * stride : 0) + ch * 8, ok);
  }
}

/// Pipeline prologue of both kernels: the CTA's Q rows (zero past `rows`), then tiles 0 and 1 of
/// the walk with K and V in separate commit groups; always 4 groups, so the main loop's
/// cp_async_wait counts do not depend on the walk's length. `prepare(t, stage)` resolves column
/// tiles, `load(s_dst, gbase, stride, t, stage)` stages one K or V tile.
template <int BM, int C, int NT, class T, class SwzQ, class Prepare, class Load>
__device__ __forceinline__ void pipeline_prologue(uint32_t s_q, const T* gq, int64_t q_stride, int rows,
                                                  SwzQ swz_q, uint32_t s_k, uint32_t s_v,
                                                  uint32_t tile_bytes, const T* gk, const T* gv,
                                                  const FlashParams& p, bool has0, bool has1,
                                                  const Tile& t0, const Tile& t1, Prepare prepare,
                                                  Load load) {
#pragma unroll
  for (int i = 0; i < BM * C / NT; ++i) {
    const int id = int(threadIdx.x) + i * NT;
    const int r = id / C, ch = id % C;
    const bool ok = r < rows;
    ptx::cp_async_16(s_q + swz_q(r, ch), gq + (ok ? int64_t(r) * q_stride : 0) + ch * 8, ok);
  }
  if (has0) {
    prepare(t0, 0);
    load(s_k, gk, p.k_row_stride, t0, 0);
  }
  ptx::cp_async_commit();
  if (has0) load(s_v, gv, p.v_row_stride, t0, 0);
  ptx::cp_async_commit();
  if (has1) {
    prepare(t1, 1);
    load(s_k + tile_bytes, gk, p.k_row_stride, t1, 1);
  }
  ptx::cp_async_commit();
  if (has1) load(s_v + tile_bytes, gv, p.v_row_stride, t1, 1);
  ptx::cp_async_commit();
}

/// Sets the scores of one m16 stripe (rows at absolute positions pos0 and pos0 + 8) to -inf where
/// the tile's kind excludes the key. Skipped by the callers for kFull tiles.
template <int NT>
__device__ __forceinline__ void mask_stripe(float (&s)[NT][4], const Tile& t, int pos0, const int* s_col,
                                            int tq, const FlashParams& p) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int n = nt * 8 + 2 * tq + (e & 1);
      const int j = t.kind == kColumns ? s_col[n] : t.c0 + n;
      if (!key_kept(t.kind, j, pos0 + (e >> 1) * 8, p)) s[nt][e] = -INFINITY;
    }
}

/// online_softmax without touching o: returns the two rows' rescale factors in alpha, for a caller
/// whose o is still being written by an asynchronous MMA (wgmma) when P is computed.
template <int NT>
__device__ __forceinline__ void online_softmax_p(float (&s)[NT][4], float (&m)[2], float (&l)[2],
                                                 float sl2, float (&alpha)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * h], s[nt][2 * h + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m[h], mx);
    const float m_use = m_new == -INFINITY ? 0.f : m_new;
    const float a = ptx::exp2_fast((m[h] - m_use) * sl2);
    m[h] = m_new;
    const float msl = m_use * sl2;
    float rs = 0.f;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 2 * h; e < 2 * h + 2; ++e) {
        const float pe = ptx::exp2_fast(fmaf(s[nt][e], sl2, -msl));
        s[nt][e] = pe;
        rs += pe;
      }
    l[h] = l[h] * a + rs;
    alpha[h] = a;
  }
}

/// Online-softmax update of one m16 stripe (exp2 domain): s becomes P, o is rescaled, m and l
/// (a per-thread partial sum, reduced in the epilogue) follow. A row with nothing kept so far
/// stays at m = -inf, l = 0 without NaN.
template <int NT, int DT>
__device__ __forceinline__ void online_softmax(float (&s)[NT][4], float (&o)[DT][4], float (&m)[2],
                                               float (&l)[2], float sl2) {
  float alpha[2];
  online_softmax_p<NT>(s, m, l, sl2, alpha);
#pragma unroll
  for (int dt = 0; dt < DT; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[dt][e] *= alpha[e >> 1];
}

/// A row's softmax sum l from the partial sums of the 4 lanes (one quad) that hold the row.
__device__ __forceinline__ float quad_row_sum(float l) {
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  return l + __shfl_xor_sync(0xffffffffu, l, 2);
}

/// Natural-log LSE of a row from its running max m (in score units; sl2 = scale * log2 e) and its
/// full sum l; -inf where nothing was kept (l = 0).
__device__ __forceinline__ float row_lse(float m, float l, float sl2) {
  return l > 0.f ? (m * sl2 + __log2f(l)) * 0.6931471805599453f : -INFINITY;
}

/// Epilogue of one m16 stripe whose first row is `row0`: O / l (zeros where nothing was kept) in
/// the output dtype, and the natural-log LSE (-inf where nothing was kept).
template <class T, int DT>
__device__ __forceinline__ void store_stripe(const float (&o)[DT][4], const float (&m)[2],
                                             const float (&l)[2], int row0, int hq, int tq,
                                             float sl2, const FlashParams& p) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float lr = quad_row_sum(l[h]);
    const float inv = lr > 0.f ? 1.f / lr : 0.f;
    const int row = row0 + h * 8;
    if (row >= p.seq_q) continue;
    const int64_t obase = hq * p.o_head_stride + int64_t(row) * p.o_row_stride + 2 * tq;
    if (p.out_f32) {
      float* out = static_cast<float*>(p.out) + obase;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt)
        *reinterpret_cast<float2*>(out + dt * 8) = make_float2(o[dt][2 * h] * inv, o[dt][2 * h + 1] * inv);
    } else {
      T* out = static_cast<T*>(p.out) + obase;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt)
        *reinterpret_cast<uint32_t*>(out + dt * 8) = ptx::pack2<T>(o[dt][2 * h] * inv, o[dt][2 * h + 1] * inv);
    }
    if (p.lse && tq == 0)
      p.lse[hq * p.lse_head_stride + int64_t(row) * p.lse_row_stride] = row_lse(m[h], lr, sl2);
  }
}

}  // namespace detail

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) flash_attention_kernel(const FlashParams p) {
  using T = typename Cfg::T;
  using detail::swz;
  constexpr int D = Cfg::kD, BN = Cfg::kBN, BM = Cfg::kBM, MT = Cfg::kMT, C = Cfg::kChunks;
  constexpr int NT = Cfg::kThreads;
  constexpr bool QREG = Cfg::kQInRegs;
  constexpr uint32_t kTileBytes = BN * D * 2;

  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t s_q = ptx::smem_addr(smem);
  const uint32_t s_k = s_q + BM * D * 2;  // 2 stages
  const uint32_t s_v = s_k + 2 * kTileBytes;
  int* s_col = reinterpret_cast<int*>(smem + (BM * D + 4 * BN * D) * 2);  // [2][BN] + 2 flags

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;
  const int m_tile = p.num_m_tiles - 1 - int(blockIdx.x);  // heaviest causal tiles first
  const int hq = blockIdx.y, hkv = hq / p.group;
  const int r0 = m_tile * BM;
  const int rows = min(BM, p.seq_q - r0);
  const T* gq = static_cast<const T*>(p.q) + hq * p.q_head_stride + int64_t(r0) * p.q_row_stride;
  const T* gk = static_cast<const T*>(p.k) + hkv * p.k_head_stride;
  const T* gv = static_cast<const T*>(p.v) + hkv * p.v_head_stride;

  detail::TileIter<BN> it = detail::make_tile_iter<BN>(p, hq, r0, rows);
  auto prepare_columns = [&](const detail::Tile& t, int stage) {
    detail::prepare_columns<BN>(t, s_col + stage * BN, s_col + 2 * BN + stage, it, p);
  };
  const auto swz_tile = [](int r, int ch) { return swz<C>(r, ch); };
  auto load_tile = [&](uint32_t s_dst, const T* gbase, int64_t stride, const detail::Tile& t,
                       int stage) {
    detail::load_tile_async<BN, C, NT>(s_dst, gbase, stride, t, s_col + stage * BN, p.seq_k, swz_tile);
  };

  // ---- prologue: Q + tile 0 (K, V), tile 1 (K, V); always 4 commit groups -------------------
  detail::Tile t0{}, t1{};
  bool has0 = it.next(t0);
  bool has1 = has0 && it.next(t1);
  detail::pipeline_prologue<BM, C, NT>(s_q, gq, p.q_row_stride, rows, swz_tile, s_k, s_v, kTileBytes,
                                       gk, gv, p, has0, has1, t0, t1, prepare_columns, load_tile);

  // ---- state -----------------------------------------------------------------------------------
  float o[MT][D / 8][4];
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mi][dt][e] = 0.f;
    m[mi][0] = m[mi][1] = -INFINITY;
    l[mi][0] = l[mi][1] = 0.f;
  }
  uint32_t qf[QREG ? MT : 1][QREG ? D / 16 : 1][4];
  const int wrow = warp * 16 * MT;  // first row of this warp inside the CTA tile
  const float sl2 = p.scale_log2;

  // ldmatrix lane offsets inside a 16-row slab. Chunk 2k+b of row r sits at chunk (2k+b)^(r&7) =
  // 2k ^ (b^(r&7)), and the slab's byte offsets have no bits in the XOR range, so every fragment
  // address is one per-lane base XOR a compile-time constant (32*k): no per-fragment registers.
  constexpr uint32_t kRowBytes = C * 16;
  const uint32_t a_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * kRowBytes + 16 * ((lane >> 4) ^ (lane & 7));
  const uint32_t k_off = ((lane & 7) + (lane >> 4) * 8) * kRowBytes + 16 * (((lane >> 3) & 1) ^ (lane & 7));
  auto q_frag = [&](int mi, int kk, uint32_t (&a)[4]) {
    ptx::ldmatrix_x4(s_q + (wrow + mi * 16) * kRowBytes + (a_off ^ (32 * kk)), a);
  };

  for (int step = 0; has0; ++step) {
    const int st = step & 1;
    const uint32_t sk = s_k + st * kTileBytes, sv = s_v + st * kTileBytes;
    ptx::cp_async_wait<3>();  // K of this tile (and Q) landed
    __syncthreads();
    if constexpr (QREG) {
      if (step == 0) {
#pragma unroll
        for (int mi = 0; mi < MT; ++mi)
#pragma unroll
          for (int kk = 0; kk < D / 16; ++kk) q_frag(mi, kk, qf[mi][kk]);
      }
    }

    // S = Q K^T (raw scores, f32)
    float s[MT][BN / 8][4];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mi][nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        if constexpr (QREG) {
#pragma unroll
          for (int e = 0; e < 4; ++e) a[mi][e] = qf[mi][kk][e];
        } else {
          q_frag(mi, kk, a[mi]);
        }
      }
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        uint32_t b[4];
        ptx::ldmatrix_x4(sk + np * 16 * kRowBytes + (k_off ^ (32 * kk)), b);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          ptx::mma_16816<T>(s[mi][2 * np], a[mi], b[0], b[1]);
          ptx::mma_16816<T>(s[mi][2 * np + 1], a[mi], b[2], b[3]);
        }
      }
    }

    // masking (only tiles that need it)
    if (detail::tile_masked(t0, s_col + 2 * BN + st)) {
#pragma unroll
      for (int mi = 0; mi < MT; ++mi)
        detail::mask_stripe<BN / 8>(s[mi], t0, r0 + wrow + mi * 16 + g + p.q_offset, s_col + st * BN, tq, p);
    }

    // online softmax (exp2 domain); l is a per-thread partial sum, reduced in the epilogue
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) detail::online_softmax<BN / 8, D / 8>(s[mi], o[mi], m[mi], l[mi], sl2);

    ptx::cp_async_wait<2>();  // V of this tile landed
    __syncthreads();          // ... for every thread; and every warp is done reading K stage st

    detail::Tile t2{};
    const bool has2 = has1 && it.next(t2);
    if (has2) {
      prepare_columns(t2, st);
      load_tile(sk, gk, p.k_row_stride, t2, st);
    }
    ptx::cp_async_commit();

    // O += P V, P straight from the score registers
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        a[mi][0] = ptx::pack2<T>(s[mi][2 * kk][0], s[mi][2 * kk][1]);
        a[mi][1] = ptx::pack2<T>(s[mi][2 * kk][2], s[mi][2 * kk][3]);
        a[mi][2] = ptx::pack2<T>(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
        a[mi][3] = ptx::pack2<T>(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        ptx::ldmatrix_x4_trans(sv + kk * 16 * kRowBytes + (a_off ^ (32 * dp)), b);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          ptx::mma_16816<T>(o[mi][2 * dp], a[mi], b[0], b[1]);
          ptx::mma_16816<T>(o[mi][2 * dp + 1], a[mi], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done reading V stage st
    if (has2) load_tile(sv, gv, p.v_row_stride, t2, st);
    ptx::cp_async_commit();

    t0 = t1;
    has0 = has1;
    t1 = t2;
    has1 = has2;
  }
  ptx::cp_async_wait<0>();

  // ---- epilogue: O / l, LSE --------------------------------------------------------------------
#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
    detail::store_stripe<T, D / 8>(o[mi], m[mi], l[mi], r0 + wrow + mi * 16 + g, hq, tq, sl2, p);
}

/// Launches flash_attention_kernel<Cfg> on `stream` (no synchronisation). p.num_m_tiles is set
/// here from the configuration. Returns the launch status.
template <class Cfg>
cudaError_t launch_flash_attention(FlashParams p, cudaStream_t stream) {
  auto* kernel = &flash_attention_kernel<Cfg>;
  // Idempotent and host-side only; needed per device for more than 48 KB of shared memory.
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
