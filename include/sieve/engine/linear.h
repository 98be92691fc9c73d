// Linear layers of the engine: y = x W^T (+ b) with W in f32 or bf16, x and y in f32.
//
// W is [out, in] row-major, the Hugging Face layout, used in place (memory-mapped). Few tokens
// (decode) run a GEMV that streams W once; many tokens (prefill) run a blocked GEMM that packs
// panels of W to f32 and reuses them over a tile of tokens. SIMD is chosen at run time:
// AVX-512 (bf16 through _mm512_dpbf16_ps, which rounds x to bf16 as llama.cpp does), AVX2+FMA
// (bf16 widened exactly to f32), or scalar. Parallel over output rows with OpenMP.
#pragma once

#include "sieve/core/dtype.h"

#include <cstdint>
#include <span>

namespace sieve::engine {

/// A weight matrix [rows (= out features), cols (= in features)] row-major, f32 or bf16.
struct Matrix {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
};

enum class LinearIsa { kAuto, kScalar, kAvx2, kAvx512 };

/// One output of linear_many(): y = x w^T (+ bias), y [num_tokens, w.rows].
struct LinearTarget {
  Matrix w;
  float* y = nullptr;
  const float* maybe_bias = nullptr;
};

/// y[t, n] = sum_k x[t, k] * w[n, k] (+ bias[n]) for t < num_tokens, n < w.rows.
/// @param x [num_tokens, w.cols] f32 contiguous;  @param y [num_tokens, w.rows] f32 contiguous
/// @throws sieve::Error for an f16 matrix or empty shapes
void linear(const float* x, int64_t num_tokens, const Matrix& w, float* y,
            const float* maybe_bias = nullptr);

/// Several projections of the same x (q/k/v, gate/up). For few tokens all rows of all matrices
/// share one parallel loop (one thread barrier instead of one per matrix: decode is made of many
/// small projections); for many tokens each runs as linear().
void linear_many(const float* x, int64_t num_tokens, std::span<const LinearTarget> targets);

/// Forces a SIMD path (tests and benchmarks); kAuto restores run-time detection. A path the
/// processor lacks throws sieve::Error.
void set_linear_isa(LinearIsa isa);
/// The path linear() uses now: "avx512", "avx512bf16", "avx2" or "scalar".
const char* linear_isa_name();
/// Whether the processor supports `isa` (kAvx512 means AVX-512 F+BW+VL+DQ+BF16).
bool linear_isa_supported(LinearIsa isa);

}  // namespace sieve::engine
