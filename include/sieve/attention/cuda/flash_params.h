// Plain-data launch description of the CUDA attention executor (host and device side).
//
// One struct covers dense and block-sparse prefill: pointers are device pointers, strides are in
// elements (head_dim contiguous), the pattern arrays follow SparsePattern (block CSR per head and
// query block, per-head token columns, local band). Filled by the host API (api.h), read by the
// kernel template (flash_kernel.cuh). No CUDA header needed.
#pragma once

#include <cstdint>

namespace sieve::attention::cuda {

struct FlashParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;  // optional
  int64_t q_head_stride = 0, q_row_stride = 0;
  int64_t k_head_stride = 0, k_row_stride = 0;
  int64_t v_head_stride = 0, v_row_stride = 0;
  int64_t o_head_stride = 0, o_row_stride = 0;
  int64_t lse_head_stride = 0, lse_row_stride = 0;
  int seq_q = 0, seq_k = 0;
  int num_heads_q = 0;
  int group = 1;        // num_heads_q / num_heads_kv
  int q_offset = 0;     // seq_k - seq_q (bottom-right causal alignment)
  int num_m_tiles = 0;  // ceil(seq_q / BLOCK_M)
  float scale_log2 = 0;  // softmax scale * log2(e)
  bool causal = true;
  bool out_f32 = false;

  // Pattern (sparse == false: every key, i.e. the dense pattern, without index arrays).
  bool sparse = false;
  const int32_t* block_indptr = nullptr;   // [pattern_heads * num_q_blocks + 1]
  const int32_t* block_indices = nullptr;  // [nnz]
  const int32_t* column_indptr = nullptr;  // [pattern_heads + 1] or null
  const int32_t* columns = nullptr;
  int64_t columns_capacity = 0;  // entries allocated for columns (bounds the staged copy; fa3)
  int block_q = 128, block_k = 128;
  int num_q_blocks = 0;
  int pattern_head_div = 1;  // query head h uses pattern head h / pattern_head_div
  int band = 0;
};

}  // namespace sieve::attention::cuda
