#include "tile_runner.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "sieve/core/threading.h"

namespace sieve::attention::cpu {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr double kLn2 = 0.6931471805599453;

int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// One thread's buffers, carved from one 64-byte aligned f32 tensor.
struct ThreadScratch {
  Tensor storage;
  TileScratch sc;
  explicit ThreadScratch(int64_t head_dim) {
    const int64_t ld = head_dim + kRowPad;
    const int64_t sizes[] = {round16(kTileRows * head_dim), round16(kChunkKeys * kScoreLd),
                             round16(kTileRows * ld),        kTileRows,
                             kTileRows,                      kTileRows,
                             round16(kChunkKeys * ld),       round16(kChunkKeys * ld)};
    int64_t total = 0;
    for (int64_t s : sizes) total += s;
    storage = Tensor(DType::kF32, {total});
    float* p = storage.data_as<float>();
    float* parts[8];
    for (int i = 0; i < 8; ++i) {
      parts[i] = p;
      p += sizes[i];
    }
    sc = TileScratch{parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], parts[7]};
  }
};

// Q tile -> panels of `panel` rows, [rows_pad/panel][D][panel] f32 times scale*log2(e), or
// [rows_pad/panel][D/2][panel][2] raw bf16 pairs; padding rows are zero.
void pack_queries(const Problem& pb, const KernelOps& ops, int64_t h, const QueryTile& tile,
                  int rows_pad, void* qp, float q_scale) {
  const int64_t D = pb.shape.head_dim;
  const int pw = ops.panel;
  for (int r = 0; r < rows_pad; ++r) {
    const int64_t base = int64_t(r / pw) * D * pw;
    const int lane = r % pw;
    const void* src = r < tile.rows ? pb.q.ptr(h, tile.row0 + r, 0) : nullptr;
    if (ops.q_bf16_pairs) {
      uint16_t* dst = static_cast<uint16_t*>(qp) + base;
      const uint16_t* s16 = static_cast<const uint16_t*>(src);
      for (int64_t d = 0; d < D; ++d)
        dst[((d / 2) * pw + lane) * 2 + (d & 1)] = src ? s16[d] : uint16_t(0);
    } else {
      float* dst = static_cast<float*>(qp) + base + lane;
      if (!src) {
        for (int64_t d = 0; d < D; ++d) dst[d * pw] = 0.0f;
      } else if (pb.q.dtype == DType::kF32) {
        const float* s32 = static_cast<const float*>(src);
        for (int64_t d = 0; d < D; ++d) dst[d * pw] = s32[d] * q_scale;
      } else {
        for (int64_t d = 0; d < D; ++d) dst[d * pw] = load_as_f32(src, pb.q.dtype, d) * q_scale;
      }
    }
  }
}

// out = O / l (zeros when the row saw no key), lse = ln 2 * (m + log2 l) (-inf when none).
void finish_tile(const Problem& pb, int64_t h, const QueryTile& tile, const TileScratch& sc) {
  const int64_t D = pb.shape.head_dim, ld = D + kRowPad;
  for (int r = 0; r < tile.rows; ++r) {
    const float l = sc.l[r];
    const float inv = l == 0.0f ? 0.0f : 1.0f / l;  // NaN l stays NaN
    const float* o = sc.o + r * ld;
    void* dst = pb.out.ptr(h, tile.row0 + r, 0);
    if (pb.out.dtype == DType::kF32) {
      float* d32 = static_cast<float*>(dst);
      for (int64_t d = 0; d < D; ++d) d32[d] = o[d] * inv;
    } else {
      for (int64_t d = 0; d < D; ++d) store_from_f32(dst, pb.out.dtype, d, o[d] * inv);
    }
    if (pb.lse) {
      float* lse = static_cast<float*>(pb.lse->ptr(h, tile.row0 + r));
      *lse = l == 0.0f ? -std::numeric_limits<float>::infinity()
                       : float(kLn2 * (double(sc.m[r]) + std::log2(double(l))));
    }
  }
}

}  // namespace

Problem make_problem(const TensorView& q, const TensorView& k, const TensorView& v,
                     const TensorView& out, const AttentionOptions& opts,
                     const TensorView* maybe_lse) {
  Problem pb;
  pb.shape = check_attention_inputs(q, k, v, &out, maybe_lse);
  SIEVE_CHECK(pb.shape.seq_len_k < (int64_t(1) << 31),
              "seq_len_k {} too long for the CPU executor (int32 key indices)", pb.shape.seq_len_k);
  SIEVE_CHECK(opts.scale >= 0.0f && std::isfinite(opts.scale),
              "softmax scale must be finite and >= 0 (0 = 1/sqrt(head_dim)), got {}", opts.scale);
  pb.q = q;
  pb.k = k;
  pb.v = v;
  pb.out = out;
  pb.lse = maybe_lse;
  pb.scale = effective_scale(opts, pb.shape.head_dim);
  pb.causal = opts.causal;
  return pb;
}

void run_tiles(const Problem& pb, const std::vector<QueryTile>& tiles, const TilePlan& plan) {
  const KernelOps& ops = select_ops(pb.q.dtype, pb.shape.head_dim);
  const int64_t H = pb.shape.num_heads_q, T = int64_t(tiles.size()), ntasks = H * T;
  if (ntasks == 0) return;
  const int nt = int(std::max<int64_t>(1, std::min<int64_t>(num_threads(), ntasks)));
  std::vector<ThreadScratch> scratch;
  scratch.reserve(size_t(nt));
  for (int i = 0; i < nt; ++i) scratch.emplace_back(pb.shape.head_dim);
  const float q_scale = pb.scale * kLog2e;
  const int64_t group = pb.shape.group_size(), D = pb.shape.head_dim, ld = D + kRowPad;

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t task = 0; task < ntasks; ++task) {
    const QueryTile& tile = tiles[size_t(T - 1 - task / H)];
    const int64_t h = task % H, g = h / group;
    const TileScratch& sc = scratch[size_t(omp_get_thread_num())].sc;
    TileInfo ti;
    ti.rows = tile.rows;
    ti.rows_pad = (tile.rows + ops.panel - 1) / ops.panel * ops.panel;
    ti.head_dim = D;
    ti.score_scale = q_scale;
    pack_queries(pb, ops, h, tile, ti.rows_pad, sc.qp, q_scale);
    std::fill(sc.o, sc.o + int64_t(tile.rows) * ld, 0.0f);
    std::fill(sc.m, sc.m + kTileRows, -std::numeric_limits<float>::infinity());
    std::fill(sc.l, sc.l + kTileRows, 0.0f);
    const KvInfo kv{pb.k.ptr(g, 0, 0), pb.v.ptr(g, 0, 0), pb.k.strides[1], pb.v.strides[1],
                    pb.k.dtype};
    ChunkBuilder builder(ops, ti, sc, kv);
    plan(h, tile, builder);
    builder.flush();
    finish_tile(pb, h, tile, sc);
  }
}

}  // namespace sieve::attention::cpu
