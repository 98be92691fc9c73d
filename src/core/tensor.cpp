#include "sieve/core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sieve {

TensorView::TensorView(void* d, DType t, std::initializer_list<int64_t> s) : data(d), dtype(t) {
  SIEVE_CHECK(s.size() >= 1 && s.size() <= size_t(kMaxDims), "tensor rank {} not in [1, {}]",
              s.size(), kMaxDims);
  ndim = int(s.size());
  int i = 0;
  for (int64_t v : s) {
    SIEVE_CHECK(v >= 0, "negative tensor dimension {}", v);
    shape[i++] = v;
  }
  int64_t stride = 1;
  for (int d2 = ndim - 1; d2 >= 0; --d2) {
    strides[d2] = stride;
    stride *= shape[d2];
  }
}

int64_t TensorView::numel() const {
  int64_t n = ndim ? 1 : 0;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool TensorView::is_contiguous() const {
  int64_t stride = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != stride) return false;
    stride *= shape[d];
  }
  return true;
}

std::string TensorView::describe() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "] " + dtype_name(dtype);
}

void Tensor::Free::operator()(void* p) const { std::free(p); }

Tensor::Tensor(DType dtype, std::initializer_list<int64_t> shape) {
  view_ = TensorView(nullptr, dtype, shape);
  const int64_t bytes = view_.numel() * dtype_size(dtype);
  const size_t alloc = size_t((bytes + 63) / 64 * 64 + 64);
  void* p = std::aligned_alloc(64, alloc);
  SIEVE_CHECK(p != nullptr, "out of memory allocating {} bytes for tensor {}", alloc, view_.describe());
  std::memset(p, 0, alloc);
  storage_ = std::shared_ptr<void>(p, Free{});
  view_.data = p;
}

Tensor::Tensor(DType dtype, const std::array<int64_t, kMaxDims>& shape, int ndim) {
  SIEVE_CHECK(ndim >= 1 && ndim <= kMaxDims, "tensor rank {} not in [1, {}]", ndim, kMaxDims);
  switch (ndim) {
    case 1: *this = Tensor(dtype, {shape[0]}); break;
    case 2: *this = Tensor(dtype, {shape[0], shape[1]}); break;
    case 3: *this = Tensor(dtype, {shape[0], shape[1], shape[2]}); break;
    default: *this = Tensor(dtype, {shape[0], shape[1], shape[2], shape[3]}); break;
  }
}

Tensor Tensor::from(const TensorView& src, DType dtype) {
  Tensor out(dtype, src.shape, src.ndim);
  const TensorView& o = out.view_;
  std::array<int64_t, kMaxDims> s{1, 1, 1, 1};
  for (int i = 0; i < src.ndim; ++i) s[kMaxDims - src.ndim + i] = src.shape[i];
  // Walk the (padded) 4-d index space; generic and slow, used for conversions only.
  TensorView a = src, b = o;
  std::array<int64_t, kMaxDims> sa{0, 0, 0, 0}, sb{0, 0, 0, 0};
  for (int i = 0; i < src.ndim; ++i) {
    sa[kMaxDims - src.ndim + i] = src.strides[i];
    sb[kMaxDims - src.ndim + i] = o.strides[i];
  }
  for (int64_t i0 = 0; i0 < s[0]; ++i0)
    for (int64_t i1 = 0; i1 < s[1]; ++i1)
      for (int64_t i2 = 0; i2 < s[2]; ++i2)
        for (int64_t i3 = 0; i3 < s[3]; ++i3) {
          const int64_t ia = i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3];
          const int64_t ib = i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3];
          store_from_f32(b.data, dtype, ib, load_as_f32(a.data, src.dtype, ia));
        }
  return out;
}

void check_finite(const TensorView& t, const std::string& what) {
  if (t.numel() == 0 || t.data == nullptr) return;
  // exponent bits all ones: inf or NaN (f32: 8 bits at 23, bf16: 8 at 7, f16: 5 at 10)
  const auto bad = [&](int64_t off) {
    const char* p = static_cast<const char*>(t.data) + off * dtype_size(t.dtype);
    if (t.dtype == DType::kF32) {
      uint32_t u;
      std::memcpy(&u, p, 4);
      return (u & 0x7f800000u) == 0x7f800000u;
    }
    uint16_t u;
    std::memcpy(&u, p, 2);
    return t.dtype == DType::kBF16 ? (u & 0x7f80u) == 0x7f80u : (u & 0x7c00u) == 0x7c00u;
  };
  const auto& s = t.shape;
  const auto& st = t.strides;
  const int nd = t.ndim;
  const auto extent = [&](int d) { return d < nd ? s[size_t(d)] : int64_t(1); };
  for (int64_t i0 = 0; i0 < extent(0); ++i0)
    for (int64_t i1 = 0; i1 < extent(1); ++i1)
      for (int64_t i2 = 0; i2 < extent(2); ++i2)
        for (int64_t i3 = 0; i3 < extent(3); ++i3) {
          const int64_t off = i0 * st[0] + (nd > 1 ? i1 * st[1] : 0) + (nd > 2 ? i2 * st[2] : 0) +
                              (nd > 3 ? i3 * st[3] : 0);
          if (!bad(off)) continue;
          const int64_t idx[4] = {i0, i1, i2, i3};
          std::string at;
          for (int d = 0; d < std::max(nd, 1); ++d) at += (d ? ", " : "") + std::to_string(idx[d]);
          const float v = load_as_f32(t.data, t.dtype, off);
          const char* kind = std::isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf";
          SIEVE_FAIL("{} has a non-finite value ({}) at [{}]; inputs must be finite", what, kind,
                     at);
        }
}

void check_ndim(const TensorView& t, int ndim, const char* what) {
  SIEVE_CHECK(t.ndim == ndim, "{} must have {} dimensions, got {}", what, ndim, t.describe());
  SIEVE_CHECK(t.data != nullptr || t.numel() == 0, "{} has no data", what);
}

}  // namespace sieve
