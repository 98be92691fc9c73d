// Internal: the per-ISA bodies of sieve::engine::linear (see include/sieve/engine/linear.h).
// Each *_avx2.cpp / *_avx512.cpp file is compiled with its own -m flags and only called after a
// run-time check, so no other translation unit may include <immintrin.h> code from them.
#pragma once

#include "sieve/engine/linear.h"

#include <cstdint>

namespace sieve::engine::detail {

/// Decode-sized problems (few tokens) stream W once; larger ones use the packed GEMM.
constexpr int64_t kGemmMinTokens = 4;
/// Threads for a parallel loop of `work` multiply-adds: one below 2^15, where waking a team costs
/// more than it saves (tiny models), else sieve::num_threads().
int team_size(int64_t work);

/// Rows [row0, row1) of y = x w^T for a few tokens (y row stride w.rows); single-threaded, the
/// caller splits rows over threads (one parallel loop can then serve several matrices).
void gemv_rows_scalar(const float* x, int64_t num_tokens, const Matrix& w, int64_t row0,
                      int64_t row1, float* y);
void gemv_rows_avx2(const float* x, int64_t num_tokens, const Matrix& w, int64_t row0,
                    int64_t row1, float* y);
void gemv_rows_avx512(const float* x, int64_t num_tokens, const Matrix& w, int64_t row0,
                      int64_t row1, float* y);

/// y = x w^T for many tokens: packed, cache-blocked, threaded inside.
void gemm_avx2(const float* x, int64_t num_tokens, const Matrix& w, float* y);
void gemm_avx512(const float* x, int64_t num_tokens, const Matrix& w, float* y);

}  // namespace sieve::engine::detail
