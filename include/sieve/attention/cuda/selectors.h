// GPU estimation stage of the registered selectors: the pattern is computed from device Q/K and
// written in device memory, so that a prefill is selector + executor without a host round trip.
//
// Ported: rr (RRAttention), unisparse (UniSparse), streaming (both modes), dense, sample
// (SampleAttention), xattn (XAttention; strides with block_k / stride <= 64), vslash
// (MInference vertical-slash) and flexprefill (FlexPrefill); every one with share_kv_head=false
// (with it the CPU selector runs). Every selector
// falls back to the dense pattern below its dense_below length, as on the CPU. The GPU
// follows the CPU selector's arithmetic (f32 scores, the same representatives and rules); sums run
// in another order, so blocks whose cumulative mass sits at the threshold can differ (docs/cuda.md).
// q [Hq, Lq, D], k [Hkv, Lk, D] device tensors, bf16 or f16, D 64 or 128; the pattern has query
// heads (share_kv_head is not ported).
#pragma once

#include "sieve/attention/cuda/api.h"
#include "sieve/attention/selector.h"

#include <string>
#include <string_view>

namespace sieve::attention::cuda {

/// Estimate arithmetic of the rr and unisparse ports, process-wide:
///  - "simt": f32 representatives, f32 SIMT GEMM (the CPU's arithmetic; patterns equal the CPU's
///    up to f32 summation order);
///  - "mma": the representatives rounded to bf16, scores on tensor cores (mma.sync, f32
///    accumulation); several times faster, patterns may differ from the CPU's where bf16 rounding
///    moves a block across the threshold (docs/cuda.md);
///  - "wgmma": "mma" with the fused statistics kernel on Hopper's warpgroup MMA where the device
///    has it (compute capability 9.0), mma.sync elsewhere; same values up to f32 summation order.
///  - "wgmma-ws": "wgmma" with the warp-specialised instance of the fused kernel (a producer
///    warpgroup and a 4-stage key-tile ring; same values as "wgmma", mma.sync off Hopper).
///  - "wgmma-pp": "wgmma-ws" with its ping-pong instance (no wgmma serialisation, the
///    consumer warpgroups taking turns to issue; same values).
///  - "wgmma-tma" (default): "wgmma-pp" with the key tiles copied by TMA instead of cp.async
///    (same values; "wgmma-pp" when units % 16 != 0).
/// Configurations the mma kernel cannot tile (row width other than 64/128/256) use "simt". The
/// initial value is the environment variable SIEVE_GPU_ESTIMATE when set, else "wgmma-tma".
/// @throws sieve::Error for other names
void set_estimate_path(std::string_view name);
std::string estimate_path();

/// Whether select_on_device() runs `selector` (its name and configuration) on the GPU.
bool has_device_selector(const PatternSelector& selector);

/// Runs the selector on device tensors, asynchronously on `stream` (scratch memory is
/// stream-ordered; the returned pattern's arrays are valid once the stream reaches this point).
/// @throws sieve::Error when the selector has no GPU port, or for unsupported inputs
DevicePattern select_on_device(const PatternSelector& selector, const TensorView& q,
                               const TensorView& k, const AttentionOptions& opts,
                               Stream stream = nullptr);

/// Recall of a device pattern on device q, k: per evaluated row (every row_stride-th query row of
/// every head) the exact softmax mass inside the pattern (f32 scores, f64 sums); mean and min.
/// Synchronises `stream`. Scratch: evaluated rows x seq_len_k floats.
struct DeviceRecall {
  double mean = 0, min = 0;
  int64_t rows = 0;
};
DeviceRecall pattern_recall(const TensorView& q, const TensorView& k, const DevicePatternView& pattern,
                            const AttentionOptions& opts, int64_t row_stride, Stream stream = nullptr);

}  // namespace sieve::attention::cuda
