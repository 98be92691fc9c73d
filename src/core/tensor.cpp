#include "sieve/core/tensor.h"

#include <array>
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

namespace {

// Shape and strides of t padded to kMaxDims on the left (extent 1, stride 0), so that one 4-deep
// loop walks every rank.
struct Padded {
  std::array<int64_t, kMaxDims> shape{1, 1, 1, 1}, strides{0, 0, 0, 0};
  explicit Padded(const TensorView& t) {
    for (int i = 0; i < t.ndim; ++i) {
      shape[size_t(kMaxDims - t.ndim + i)] = t.shape[size_t(i)];
      strides[size_t(kMaxDims - t.ndim + i)] = t.strides[size_t(i)];
    }
  }
  int64_t offset(const std::array<int64_t, kMaxDims>& idx) const {
    return idx[0] * strides[0] + idx[1] * strides[1] + idx[2] * strides[2] + idx[3] * strides[3];
  }
};

// f(idx, offset) for every element of t in row-major order: idx its padded index, offset its
// position in elements. Generic and slow: conversions and input checks only.
template <class F>
void for_each_element(const TensorView& t, F&& f) {
  const Padded p(t);
  std::array<int64_t, kMaxDims> i{};
  for (i[0] = 0; i[0] < p.shape[0]; ++i[0])
    for (i[1] = 0; i[1] < p.shape[1]; ++i[1])
      for (i[2] = 0; i[2] < p.shape[2]; ++i[2])
        for (i[3] = 0; i[3] < p.shape[3]; ++i[3]) f(i, p.offset(i));
}

}  // namespace

Tensor Tensor::from(const TensorView& src, DType dtype) {
  Tensor out(dtype, src.shape, src.ndim);
  const Padded o(out.view_);
  for_each_element(src, [&](const std::array<int64_t, kMaxDims>& i, int64_t ia) {
    store_from_f32(out.view_.data, dtype, o.offset(i), load_as_f32(src.data, src.dtype, ia));
  });
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
  for_each_element(t, [&](const std::array<int64_t, kMaxDims>& i, int64_t off) {
    if (!bad(off)) return;
    std::string at;  // the index in t's own dimensions (the last ndim of the padded ones)
    for (int d = kMaxDims - t.ndim; d < kMaxDims; ++d)
      at += (at.empty() ? "" : ", ") + std::to_string(i[size_t(d)]);
    const float v = load_as_f32(t.data, t.dtype, off);
    const char* kind = std::isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf";
    SIEVE_FAIL("{} has a non-finite value ({}) at [{}]; inputs must be finite", what, kind, at);
  });
}

void check_ndim(const TensorView& t, int ndim, const char* what) {
  SIEVE_CHECK(t.ndim == ndim, "{} must have {} dimensions, got {}", what, ndim, t.describe());
  SIEVE_CHECK(t.data != nullptr || t.numel() == 0, "{} has no data", what);
}

}  // namespace sieve
