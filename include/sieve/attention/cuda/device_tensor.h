// DeviceTensor: an owning, contiguous tensor in device memory that hands out TensorViews.
//
// For callers that start from host tensors (tests, benchmarks, `sieve attn --device cuda`):
// upload, poison, download. Allocation uses cudaMalloc (never managed memory). Copies are
// synchronous with respect to the host (they finish before returning).
#pragma once

#include "sieve/core/tensor.h"

#include <initializer_list>
#include <memory>

namespace sieve::attention::cuda {

class DeviceTensor {
 public:
  DeviceTensor() = default;
  /// Uninitialised device tensor. @throws sieve::Error when cudaMalloc fails
  DeviceTensor(DType dtype, std::initializer_list<int64_t> shape);
  DeviceTensor(DType dtype, const std::array<int64_t, kMaxDims>& shape, int ndim);
  /// Contiguous device copy of a host view (any strides).
  static DeviceTensor from_host(const TensorView& host);

  /// Copies into a host view of the same shape and dtype (any strides).
  void to_host(const TensorView& host) const;
  /// Host copy.
  Tensor to_host() const;
  /// Sets every byte to `value` (0xff poisons bf16/f16/f32 with NaN).
  void fill_bytes(int value);

  TensorView view() const { return view_; }
  operator TensorView() const { return view_; }
  int64_t nbytes() const { return view_.numel() * dtype_size(view_.dtype); }

 private:
  std::shared_ptr<void> storage_;
  TensorView view_;
};

}  // namespace sieve::attention::cuda
