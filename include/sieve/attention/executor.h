// Executors: exact softmax attention over a pattern, one online-softmax state per query row.
//
// dense_attention is the FlashAttention-2 algorithm on the CPU (tiles, online softmax, f32
// accumulation, SIMD chosen at run time). block_sparse_attention computes attention restricted to a
// SparsePattern with the same numerics; with SparsePattern::dense it equals dense_attention.
// Inputs may be f32, bf16 or f16 (q, k, v of one dtype); out may be f32 or the input dtype.
#pragma once

#include "sieve/attention/params.h"
#include "sieve/attention/sparse_pattern.h"

#include <string_view>

namespace sieve::attention {

/// @param q   [num_heads_q, seq_len_q, head_dim]
/// @param k,v [num_heads_kv, seq_len_k, head_dim]
/// @param out [num_heads_q, seq_len_q, head_dim], written
/// @param maybe_lse [num_heads_q, seq_len_q] f32, written when non-null
/// @throws sieve::Error on shape, dtype or stride mismatch
void dense_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                     const TensorView& out, const AttentionOptions& opts,
                     const TensorView* maybe_lse = nullptr);

/// Same as dense_attention, restricted to `pattern` (validated first).
/// @throws sieve::Error when the pattern does not match the inputs (sizes, heads) or is malformed
void block_sparse_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                            const SparsePattern& pattern, const TensorView& out,
                            const AttentionOptions& opts, const TensorView* maybe_lse = nullptr);

/// Name of the SIMD path chosen at run time ("avx512", "avx2" or "scalar").
const char* cpu_kernel_isa();

/// Forces the SIMD path of later calls: "auto" (the best the CPU has), "avx512", "avx2",
/// "scalar", or "avx2-wide" (the AVX-512 16-lane tiling and bf16 pair layout emulated with AVX2,
/// a test aid for machines without AVX-512). For tests and benchmarks; not thread-safe with
/// concurrent attention calls. @throws sieve::Error for unknown names or ISAs the CPU lacks
void set_cpu_kernel_isa(std::string_view isa);

}  // namespace sieve::attention
