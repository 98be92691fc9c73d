#include "sieve/attention/cuda/device_tensor.h"

#include "sieve/attention/cuda/check.h"

#include <cstring>

namespace sieve::attention::cuda {

namespace {
// Host copy of a possibly strided view into a contiguous one of the same dtype.
Tensor contiguous_copy(const TensorView& host) {
  if (host.is_contiguous()) return Tensor();  // no copy needed
  return Tensor::from(host, host.dtype);
}
}  // namespace

DeviceTensor::DeviceTensor(DType dtype, std::initializer_list<int64_t> shape) {
  view_ = TensorView(nullptr, dtype, shape);
  const int64_t bytes = nbytes();
  void* p = nullptr;
  if (bytes > 0) SIEVE_CUDA_CHECK(cudaMalloc(&p, size_t(bytes)));
  storage_ = std::shared_ptr<void>(p, [](void* q) {
    if (q) cudaFree(q);
  });
  view_.data = p;
}

DeviceTensor::DeviceTensor(DType dtype, const std::array<int64_t, kMaxDims>& shape, int ndim) {
  SIEVE_CHECK(ndim >= 1 && ndim <= kMaxDims, "tensor rank {} not in [1, {}]", ndim, kMaxDims);
  switch (ndim) {
    case 1: *this = DeviceTensor(dtype, {shape[0]}); break;
    case 2: *this = DeviceTensor(dtype, {shape[0], shape[1]}); break;
    case 3: *this = DeviceTensor(dtype, {shape[0], shape[1], shape[2]}); break;
    default: *this = DeviceTensor(dtype, {shape[0], shape[1], shape[2], shape[3]}); break;
  }
}

DeviceTensor DeviceTensor::from_host(const TensorView& host) {
  DeviceTensor d(host.dtype, host.shape, host.ndim);
  const Tensor tmp = contiguous_copy(host);
  const void* src = tmp.data() ? tmp.data() : host.data;
  if (d.nbytes() > 0) SIEVE_CUDA_CHECK(cudaMemcpy(d.view_.data, src, size_t(d.nbytes()), cudaMemcpyHostToDevice));
  return d;
}

void DeviceTensor::to_host(const TensorView& host) const {
  SIEVE_CHECK(host.ndim == view_.ndim && host.shape == view_.shape && host.dtype == view_.dtype,
              "to_host: host view {} differs from device tensor {}", host.describe(), view_.describe());
  if (host.is_contiguous()) {
    if (nbytes() > 0) SIEVE_CUDA_CHECK(cudaMemcpy(host.data, view_.data, size_t(nbytes()), cudaMemcpyDeviceToHost));
    return;
  }
  const Tensor tmp = to_host();  // contiguous, then element-wise into the strided destination
  std::array<int64_t, kMaxDims> s{1, 1, 1, 1};
  for (int i = 0; i < host.ndim; ++i) s[kMaxDims - host.ndim + i] = host.shape[i];
  std::array<int64_t, kMaxDims> st{0, 0, 0, 0};
  for (int i = 0; i < host.ndim; ++i) st[kMaxDims - host.ndim + i] = host.strides[i];
  const int64_t esz = dtype_size(host.dtype);
  int64_t lin = 0;
  for (int64_t i0 = 0; i0 < s[0]; ++i0)
    for (int64_t i1 = 0; i1 < s[1]; ++i1)
      for (int64_t i2 = 0; i2 < s[2]; ++i2)
        for (int64_t i3 = 0; i3 < s[3]; ++i3, ++lin) {
          const int64_t off = i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3];
          std::memcpy(static_cast<char*>(host.data) + off * esz,
                      static_cast<const char*>(tmp.data()) + lin * esz, size_t(esz));
        }
}

Tensor DeviceTensor::to_host() const {
  Tensor t(view_.dtype, view_.shape, view_.ndim);
  if (nbytes() > 0) SIEVE_CUDA_CHECK(cudaMemcpy(t.data(), view_.data, size_t(nbytes()), cudaMemcpyDeviceToHost));
  return t;
}

void DeviceTensor::fill_bytes(int value) {
  if (nbytes() > 0) SIEVE_CUDA_CHECK(cudaMemset(view_.data, value, size_t(nbytes())));
}

}  // namespace sieve::attention::cuda
