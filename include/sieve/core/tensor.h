// Strided tensor views and an owning tensor with 64-byte aligned storage.
//
// A TensorView is a non-owning (pointer, dtype, shape, strides) record of up to 4 dimensions.
// Strides are in elements, row-major by default. Attention uses [num_heads, seq_len, head_dim]
// with head_dim contiguous (stride 1). Tensor owns its memory and hands out views.
#pragma once

#include "sieve/core/dtype.h"
#include "sieve/core/error.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

namespace sieve {

constexpr int kMaxDims = 4;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> strides{};  // in elements

  TensorView() = default;
  /// Contiguous row-major view.
  TensorView(void* data, DType dtype, std::initializer_list<int64_t> shape);

  int64_t size(int dim) const { return shape[dim]; }
  int64_t numel() const;
  bool is_contiguous() const;
  /// "[3, 1024, 64] bf16": for error messages.
  std::string describe() const;

  /// Element pointer at multi-index (i0, i1, i2[, i3]) in bytes arithmetic.
  void* ptr(int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const {
    const int64_t off = i0 * strides[0] + i1 * strides[1] + i2 * strides[2] + i3 * strides[3];
    return static_cast<char*>(data) + off * dtype_size(dtype);
  }
  /// Element at multi-index as f32 (slow path for references and tests).
  float get(int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const {
    return load_as_f32(ptr(i0, i1, i2, i3), dtype, 0);
  }
  void set(float v, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const {
    store_from_f32(ptr(i0, i1, i2, i3), dtype, 0, v);
  }
};

/// Owning tensor, contiguous row-major, 64-byte aligned, zero-initialised.
class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, std::initializer_list<int64_t> shape);
  Tensor(DType dtype, const std::array<int64_t, kMaxDims>& shape, int ndim);

  TensorView view() const { return view_; }
  operator TensorView() const { return view_; }
  void* data() const { return view_.data; }
  template <class T>
  T* data_as() const { return static_cast<T*>(view_.data); }
  DType dtype() const { return view_.dtype; }
  int64_t numel() const { return view_.numel(); }
  int64_t nbytes() const { return numel() * dtype_size(view_.dtype); }
  int64_t size(int dim) const { return view_.shape[dim]; }

  /// Copy of `src` converted to `dtype` (contiguous).
  static Tensor from(const TensorView& src, DType dtype);

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::shared_ptr<void> storage_;
  TensorView view_;
};

/// Throws sieve::Error naming `what` unless `t` has exactly `ndim` dimensions.
void check_ndim(const TensorView& t, int ndim, const char* what);

/// Throws sieve::Error naming `what`, the first non-finite element's index and its value (NaN or
/// +-inf) unless every element of `t` is finite. One pass over the data (bit tests on the stored
/// 16- or 32-bit values, no conversion); meant for inputs read from files, not for hot loops.
void check_finite(const TensorView& t, const std::string& what);

}  // namespace sieve
