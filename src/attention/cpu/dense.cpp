// dense_attention: every causally visible key for tiles of kTileRows queries.
#include "sieve/attention/executor.h"
#include "tile_runner.h"

namespace sieve::attention {

void dense_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                     const TensorView& out, const AttentionOptions& opts,
                     const TensorView* maybe_lse) {
  const cpu::Problem pb = cpu::make_problem(q, k, v, out, opts, maybe_lse);
  std::vector<cpu::QueryTile> tiles;
  for (int64_t r = 0; r < pb.shape.seq_len_q; r += cpu::kTileRows)
    tiles.push_back({r, int(std::min<int64_t>(cpu::kTileRows, pb.shape.seq_len_q - r)), 0});
  const int64_t off = pb.shape.q_offset(), Lk = pb.shape.seq_len_k;
  cpu::run_tiles(pb, tiles, [&](int64_t, const cpu::QueryTile& tile, cpu::ChunkBuilder& b) {
    // keys after the tile's last query position are invisible to all of its rows
    const int64_t end = pb.causal ? std::min(Lk, tile.row0 + tile.rows + off) : Lk;
    for (int64_t j = 0; j < end; ++j) b.add(int32_t(j), cpu::causal_first_row(pb, tile, j), b.rows());
  });
}

}  // namespace sieve::attention
