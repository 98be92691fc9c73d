// block_sparse_attention: the keys of a SparsePattern (key blocks, token columns, local band) in
// one online-softmax state per row. Each key is added once per tile with the interval of tile
// rows that keep it:
//   block keys     causal rows only;
//   band keys      (pos(i) - band, pos(i)], i.e. rows [j - off, j - off + band), skipping keys
//                  inside selected blocks; a band key that is also a column is kept for every
//                  causal row (the column rule), so the column pass skips it;
//   column keys    causal rows, skipping keys inside selected blocks or the tile's band span.
#include <algorithm>

#include "sieve/attention/executor.h"
#include "tile_runner.h"

namespace sieve::attention {

namespace {

void check_pattern(const SparsePattern& p, const cpu::Problem& pb) {
  p.validate();
  SIEVE_CHECK(p.seq_len_q == pb.shape.seq_len_q && p.seq_len_k == pb.shape.seq_len_k,
              "pattern is for seq_len_q {} / seq_len_k {} but q has {} rows and k has {}",
              p.seq_len_q, p.seq_len_k, pb.shape.seq_len_q, pb.shape.seq_len_k);
  const int64_t heads = p.per_kv_head ? pb.shape.num_heads_kv : pb.shape.num_heads_q;
  SIEVE_CHECK(p.num_heads == heads, "pattern has {} heads but the inputs have {} {} heads",
              p.num_heads, heads, p.per_kv_head ? "KV (per_kv_head)" : "query");
  SIEVE_CHECK(p.causal == pb.causal, "pattern is {} but the attention options are {}",
              p.causal ? "causal" : "non-causal", pb.causal ? "causal" : "non-causal");
}

// Pattern query blocks split into near-equal tiles of at most kTileRows rows.
std::vector<cpu::QueryTile> pattern_tiles(const SparsePattern& p) {
  std::vector<cpu::QueryTile> tiles;
  for (int64_t qb = 0; qb < p.num_q_blocks(); ++qb) {
    const int64_t r0 = qb * p.block_q, len = std::min<int64_t>(p.block_q, p.seq_len_q - r0);
    const int64_t parts = (len + cpu::kTileRows - 1) / cpu::kTileRows;
    for (int64_t s = 0; s < parts; ++s) {
      const int64_t a = r0 + s * len / parts, b = r0 + (s + 1) * len / parts;
      tiles.push_back({a, int(b - a), qb});
    }
  }
  return tiles;
}

}  // namespace

void block_sparse_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                            const SparsePattern& pattern, const TensorView& out,
                            const AttentionOptions& opts, const TensorView* maybe_lse) {
  const cpu::Problem pb = cpu::make_problem(q, k, v, out, opts, maybe_lse);
  check_pattern(pattern, pb);
  const SparsePattern& p = pattern;
  const int64_t off = pb.shape.q_offset(), Lk = pb.shape.seq_len_k, band = p.band;
  const int64_t group = p.per_kv_head ? pb.shape.group_size() : 1;
  cpu::run_tiles(pb, pattern_tiles(p), [&](int64_t h, const cpu::QueryTile& tile,
                                           cpu::ChunkBuilder& b) {
    const int64_t ph = h / group, row = p.row(ph, tile.block);
    const auto blk_begin = p.block_indices.begin() + p.block_indptr[size_t(row)];
    const auto blk_end = p.block_indices.begin() + p.block_indptr[size_t(row) + 1];
    const auto col_begin = p.has_columns() ? p.columns.begin() + p.column_indptr[size_t(ph)]
                                           : p.columns.end();
    const auto col_end = p.has_columns() ? p.columns.begin() + p.column_indptr[size_t(ph) + 1]
                                         : p.columns.end();
    const int64_t p0 = tile.row0 + off, p1 = p0 + tile.rows - 1;  // first/last query position
    const int64_t limit = pb.causal ? std::min(Lk, p1 + 1) : Lk;  // keys >= limit: no row sees
    const int rows = tile.rows;
    auto in_blocks = [&](int64_t j) {
      return std::binary_search(blk_begin, blk_end, int32_t(j / p.block_k));
    };
    auto clip = [&](int64_t r) { return int32_t(std::clamp<int64_t>(r, 0, rows)); };

    for (auto it = blk_begin; it != blk_end; ++it) {
      const int64_t k0 = int64_t(*it) * p.block_k, k1 = std::min(k0 + p.block_k, limit);
      for (int64_t j = k0; j < k1; ++j) b.add(int32_t(j), cpu::causal_first_row(pb, tile, j), rows);
    }
    // band span of the tile: keys in (p0 - band, p1]
    const int64_t u0 = band > 0 ? std::max<int64_t>(0, p0 - band + 1) : 0;
    const int64_t u1 = band > 0 ? std::min(limit, p1 + 1) : 0;
    for (int64_t j = u0; j < u1; ++j) {
      if (in_blocks(j)) continue;
      const int64_t first = j - off - tile.row0;  // first tile row with pos >= j
      if (std::binary_search(col_begin, col_end, int32_t(j))) {
        b.add(int32_t(j), pb.causal ? clip(first) : 0, rows);
      } else {
        b.add(int32_t(j), clip(first), clip(first + band));
      }
    }
    for (auto it = col_begin; it != col_end && *it < limit; ++it) {
      const int64_t j = *it;
      if ((j >= u0 && j < u1) || in_blocks(j)) continue;
      b.add(int32_t(j), cpu::causal_first_row(pb, tile, j), rows);
    }
  });
}

}  // namespace sieve::attention
