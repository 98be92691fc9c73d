// The oracle block pattern: the density floor that block selectors are judged against.
//
// Per (query head, query block) it keeps the fewest key blocks, ranked by their TRUE softmax mass
// (exact, from q and k, summed over the block's evaluated rows, each row normalised to 1), whose
// mass reaches `share` of the block's mass; the sink block 0 and the diagonal block count first,
// as every selector forces them. Hence the mean recall over the evaluated rows is >= share, and
// no block pattern keeping sink and diagonal reaches that with fewer blocks in any query block.
// Not a selector: it reads the exact attention it would be judged against. Causal, square blocks.
// Shapes: q [Hq, Lq, D], k [Hkv, Lk, D]; rows: evaluated query rows (e.g. strided_rows()).
#pragma once

#include "sieve/attention/params.h"
#include "sieve/attention/sparse_pattern.h"
#include "sieve/core/tensor.h"

#include <cstdint>
#include <vector>

namespace sieve::attention {

/// @throws sieve::Error for share outside (0, 1], block < 1, rows out of range or a bad GQA shape
SparsePattern oracle_pattern(const TensorView& q, const TensorView& k, const AttentionShape& shape,
                             const std::vector<int64_t>& rows, double share, int block = 128);

}  // namespace sieve::attention
