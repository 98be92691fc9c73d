// CUDA backend of the attention executors: the CPU entry points (executor.h) on device memory.
//
// Tensors are the same TensorView records with `data` pointing to device memory (cudaMalloc);
// shapes, strides and dtypes follow params.h ([heads, seq, head_dim], head_dim contiguous, GQA).
// Inputs bf16 or f16, head_dim 64 or 128, out bf16/f16 (as the inputs) or f32, optional f32 LSE.
// Every call is asynchronous on `stream` (no host synchronisation); errors in the arguments throw
// sieve::Error before anything is launched. A DevicePattern is a SparsePattern in device memory:
// what GPU selectors write and the block-sparse executor reads. Kernel: flash_kernel.cuh.
#pragma once

#include "sieve/attention/params.h"
#include "sieve/attention/sparse_pattern.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct CUstream_st;  // cudaStream_t without the CUDA headers

namespace sieve::attention::cuda {

using Stream = CUstream_st*;

/// Number of usable CUDA devices; 0 when there is no device or no driver (never throws).
int device_count();
/// Backends this process can run attention on: "cpu", plus "cuda" when a device is usable.
std::vector<std::string> available_backends();

/// Kernel instance for (dtype, head_dim, pattern block_k; 0 = dense; whether the pattern has token
/// columns) on the current device: "fa3" (Hopper, warp-specialised TMA + wgmma; head dim 128,
/// block_k a multiple of 128; token columns run its instance that gathers column tiles), "wgmma"
/// (Hopper, compute capability 9.0, sm_90a) or "mma.sync" (sm_80+); "fa3grid" for fa3 under that
/// preference. A block-sparse pattern needs block_q % block_m == 0 and block_k % block_n == 0
/// (the mma.sync shape always fits when the wgmma one does not).
struct KernelInfo {
  const char* name = "";
  int block_m = 0, block_n = 0, threads = 0, smem_bytes = 0;
};
KernelInfo kernel_info(DType dtype, int64_t head_dim, int64_t block_k = 0, bool token_columns = false);

/// Kernel family for later calls: "auto" (fa3, else wgmma, where they run and fit, else
/// mma.sync), "mma", "wgmma" or "fa3" (a forced family throws where it cannot run). For tests and
/// benchmarks; process-wide. "fa3grid" forces fa3 too and is reported under that name (fa3 runs
/// one CTA per query block and group of query heads, the heads' (query block, head) tiles one
/// after another: 4 heads per CTA, 1 with token columns; its persistent schedule was measured
/// slower and removed, see docs/cuda.md).
/// @throws sieve::Error for other names, listing the accepted ones
void set_kernel_preference(std::string_view name);

/// Non-owning view of a SparsePattern whose arrays live in device memory.
struct DevicePatternView {
  int64_t seq_len_q = 0, seq_len_k = 0;
  int block_q = 128, block_k = 128;
  int num_heads = 0;
  bool per_kv_head = false;
  bool causal = true;
  const int32_t* block_indptr = nullptr;   // [num_heads * num_q_blocks + 1]
  const int32_t* block_indices = nullptr;  // [nnz]
  int64_t nnz = 0;
  const int32_t* column_indptr = nullptr;  // [num_heads + 1] or null
  const int32_t* columns = nullptr;
  int64_t num_columns = 0;
  int64_t band = 0;
  int64_t num_q_blocks() const { return (seq_len_q + block_q - 1) / block_q; }
  int64_t num_k_blocks() const { return (seq_len_k + block_k - 1) / block_k; }
};

/// Owning device copy of a pattern. Its memory comes from the device's stream-ordered pool on the
/// stream of the call that made it (upload, allocate, select_on_device) and goes back, in that
/// stream's order, when the last copy of the object goes away; neither step synchronises the
/// device. A pattern read on another stream must outlive that work: order the other stream
/// before the pattern's release (an event, or a synchronisation) as with cudaFreeAsync. The
/// stream it was made on must still exist when the last copy goes away (the default stream
/// always does).
class DevicePattern {
 public:
  DevicePattern() = default;
  /// Copies a validated host pattern to the device (stream-ordered; `pattern` may be freed after
  /// the call returns since pageable copies complete before returning).
  static DevicePattern upload(const SparsePattern& pattern, Stream stream = nullptr);
  /// Allocates uninitialised index arrays for a pattern of the given header (GPU selectors fill
  /// them on `stream`); `nnz` and `num_columns` are capacities. num_columns < 0: no column part.
  static DevicePattern allocate(const DevicePatternView& header, int64_t nnz, int64_t num_columns,
                                Stream stream = nullptr);
  /// Copies back to the host (synchronises `stream`).
  SparsePattern download(Stream stream = nullptr) const;

  const DevicePatternView& view() const { return view_; }
  DevicePatternView& mutable_view() { return view_; }
  bool empty() const { return storage_ == nullptr; }

 private:
  std::shared_ptr<void> storage_;  // one cudaMalloc block holding every array
  DevicePatternView view_;
};

/// Dense attention on device tensors; same contract as attention::dense_attention.
/// @throws sieve::Error on shape/dtype/stride/alignment mismatch, host pointers, unsupported
///   head_dim or dtype, or a failed launch
void dense_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                     const TensorView& out, const AttentionOptions& opts,
                     const TensorView* maybe_lse = nullptr, Stream stream = nullptr);

/// Attention restricted to a device pattern (same semantics as attention::block_sparse_attention:
/// blocks, columns and band united, causal on top, no key counted twice).
/// @throws sieve::Error additionally when the pattern does not match the inputs or the tile shape
void block_sparse_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                            const DevicePatternView& pattern, const TensorView& out,
                            const AttentionOptions& opts, const TensorView* maybe_lse = nullptr,
                            Stream stream = nullptr);

}  // namespace sieve::attention::cuda
