// Query-tile driver shared by dense_attention and block_sparse_attention (FlashAttention-2 on the
// CPU): every (query head, query tile) task packs its queries once, streams the keys its plan
// names through one online-softmax state in chunks of kChunkKeys, and normalises at the end.
// The plan decides which keys a tile sees (all causal keys for dense; blocks, columns and band
// for block-sparse); the kernels (kernel_*.cpp) do the arithmetic.
#pragma once

#include <functional>
#include <vector>

#include "kernel.h"
#include "sieve/attention/params.h"

namespace sieve::attention::cpu {

/// A validated attention call.
struct Problem {
  TensorView q, k, v, out;
  const TensorView* lse = nullptr;
  AttentionShape shape;
  float scale = 1.0f;  // softmax scale, natural units
  bool causal = true;
};

/// Validates the inputs (check_attention_inputs) and sizes that the kernels index with int32.
Problem make_problem(const TensorView& q, const TensorView& k, const TensorView& v,
                     const TensorView& out, const AttentionOptions& opts,
                     const TensorView* maybe_lse);

/// Query rows [row0, row0 + rows) of a head, rows <= kTileRows; `block` is the plan's own id
/// (the pattern's query block for block-sparse).
struct QueryTile {
  int64_t row0 = 0;
  int rows = 0;
  int64_t block = 0;
};

/// Collects a tile's keys into chunks and hands each full chunk to the kernel.
class ChunkBuilder {
 public:
  ChunkBuilder(const KernelOps& ops, const TileInfo& ti, const TileScratch& sc, const KvInfo& kv)
      : ops_(ops), ti_(ti), sc_(sc), kv_(kv) {}
  int rows() const { return ti_.rows; }
  /// Adds key `key`, kept for tile rows [lo, hi) with 0 <= lo, hi <= rows; lo >= hi adds nothing.
  void add(int32_t key, int32_t lo, int32_t hi) {
    if (lo >= hi) return;
    keys_[n_] = key;
    lo_[n_] = lo;
    hi_[n_] = hi;
    masked_ = masked_ || lo > 0 || hi < ti_.rows;
    if (++n_ == kChunkKeys) flush();
  }
  void flush() {
    if (n_ == 0) return;
    const ChunkKeys ck{n_, keys_, masked_ ? lo_ : nullptr, masked_ ? hi_ : nullptr};
    ops_.chunk(ti_, sc_, kv_, ck);
    n_ = 0;
    masked_ = false;
  }

 private:
  const KernelOps& ops_;
  const TileInfo& ti_;
  const TileScratch& sc_;
  const KvInfo& kv_;
  int n_ = 0;
  bool masked_ = false;
  int32_t keys_[kChunkKeys], lo_[kChunkKeys], hi_[kChunkKeys];
};

/// Adds the keys of a plan for query head `head_q` and `tile` to `out` (any order, each key once).
using TilePlan = std::function<void(int64_t head_q, const QueryTile& tile, ChunkBuilder& out)>;

/// Runs every (query head, tile) task on sieve::num_threads() threads, later tiles first (they
/// carry the most keys under causality), and writes pb.out and pb.lse.
void run_tiles(const Problem& pb, const std::vector<QueryTile>& tiles, const TilePlan& plan);

/// First tile row that may see key j under bottom-right causality (clipped to [0, rows]).
inline int32_t causal_first_row(const Problem& pb, const QueryTile& tile, int64_t j) {
  if (!pb.causal) return 0;
  const int64_t r = j - pb.shape.q_offset() - tile.row0;
  return int32_t(r < 0 ? 0 : r > tile.rows ? tile.rows : r);
}

}  // namespace sieve::attention::cpu
