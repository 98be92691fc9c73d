#include "sieve/attention/cuda/host_run.h"

#include "sieve/attention/cuda/api.h"
#include "sieve/attention/cuda/check.h"
#include "sieve/attention/cuda/device_tensor.h"
#include "sieve/attention/cuda/selectors.h"
#include "sieve/core/timer.h"

#include <algorithm>
#include <functional>

namespace sieve::attention::cuda {

double event_ms(const std::function<void()>& fn) {
  cudaEvent_t a = nullptr, b = nullptr;
  SIEVE_CUDA_CHECK(cudaEventCreate(&a));
  SIEVE_CUDA_CHECK(cudaEventCreate(&b));
  float ms = 0;
  const cudaError_t e1 = cudaEventRecord(a);
  fn();
  const cudaError_t e2 = cudaEventRecord(b);
  const cudaError_t e3 = cudaEventSynchronize(b);
  const cudaError_t e4 = cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  SIEVE_CUDA_CHECK(e1);
  SIEVE_CUDA_CHECK(e2);
  SIEVE_CUDA_CHECK(e3);
  SIEVE_CUDA_CHECK(e4);
  return ms;
}

namespace {

DeviceTensor upload(const TensorView& t) {
  if (t.dtype == DType::kF32) return DeviceTensor::from_host(Tensor::from(t, DType::kBF16));
  return DeviceTensor::from_host(t);
}

// Best of `repeat` runs, each timed with CUDA events around fn, after one untimed warm-up call: a
// kernel's first launch in a process pays for loading its module (CUDA loads lazily) and the
// stream-ordered pool grows to the call's scratch, neither of which a steady-state prefill sees
// (rr's first select at 32K took 37 ms against 0.9 ms after it).
double best_ms(int repeat, const std::function<void()>& fn) {
  fn();
  SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
  double best = 1e300;
  for (int r = 0; r < std::max(1, repeat); ++r) best = std::min(best, event_ms(fn));
  return best;
}

// Device f32 [Hq, Lq, D] -> host view of the same shape (any float dtype, any strides).
void copy_out(const DeviceTensor& dev, const TensorView& out) {
  SIEVE_CHECK(out.ndim == 3 && out.shape == dev.view().shape, "HostWorkload: out must be {}, got {}",
              dev.view().describe(), out.describe());
  if (out.dtype == DType::kF32) {
    dev.to_host(out);
    return;
  }
  const Tensor host = dev.to_host();
  for (int64_t h = 0; h < out.shape[0]; ++h)
    for (int64_t i = 0; i < out.shape[1]; ++i)
      for (int64_t d = 0; d < out.shape[2]; ++d) out.set(host.view().get(h, i, d), h, i, d);
}

}  // namespace

struct HostWorkload::Impl {
  DeviceTensor q, k, v, out;
  AttentionShape shape;
};

HostWorkload::HostWorkload(const TensorView& q, const TensorView& k, const TensorView& v) {
  SIEVE_CHECK(device_count() > 0, "--device cuda: no CUDA device is available");
  impl_ = std::make_unique<Impl>();
  impl_->shape = check_attention_inputs(q, k, v);
  impl_->q = upload(q);
  impl_->k = upload(k);
  impl_->v = upload(v);
  impl_->out = DeviceTensor(DType::kF32, {q.shape[0], q.shape[1], q.shape[2]});
}

HostWorkload::~HostWorkload() = default;

const char* HostWorkload::kernel_name() const {
  return kernel_info(impl_->q.view().dtype, impl_->shape.head_dim).name;
}

double HostWorkload::dense(const AttentionOptions& opts, const TensorView& out, int repeat) {
  Impl& w = *impl_;
  const double ms = best_ms(repeat, [&] { dense_attention(w.q, w.k, w.v, w.out, opts); });
  copy_out(w.out, out);
  return ms;
}

HostRunTimes HostWorkload::run(const PatternSelector& selector, const AttentionOptions& opts,
                               SparsePattern& pattern, const TensorView& out, int repeat) {
  Impl& w = *impl_;
  HostRunTimes t;
  DevicePattern dp;
  if (has_device_selector(selector)) {
    t.selector_on_device = true;
    t.select_ms = best_ms(repeat, [&] { dp = select_on_device(selector, w.q, w.k, opts); });
    pattern = dp.download();
  } else {  // CPU selector on the host tensors (as uploaded), then the pattern to the device
    const Tensor hq = w.q.to_host(), hk = w.k.to_host();
    t.select_ms = 1e300;
    for (int r = 0; r < std::max(1, repeat); ++r) {
      Timer timer;
      pattern = selector.select(hq, hk, opts);
      dp = DevicePattern::upload(pattern);
      SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
      t.select_ms = std::min(t.select_ms, timer.ms());
    }
  }
  t.execute_ms = best_ms(repeat, [&] { block_sparse_attention(w.q, w.k, w.v, dp.view(), w.out, opts); });
  copy_out(w.out, out);
  return t;
}

}  // namespace sieve::attention::cuda
