// Running the CUDA backend on a host workload: what `sieve attn --device cuda` calls.
//
// HostWorkload uploads host Q/K/V once (bf16/f16; f32 inputs are rounded to bf16 on upload) and
// runs, per method, the selector (on the GPU when it has a port, see selectors.h; otherwise on
// the CPU with the host tensors, its pattern then uploaded) and the block-sparse executor, timed
// with CUDA events (best of `repeat`), writing the output back into a host tensor and returning
// the host pattern, so that host-side metrics work unchanged.
#pragma once

#include "sieve/attention/params.h"
#include "sieve/attention/selector.h"
#include "sieve/attention/sparse_pattern.h"

#include <functional>
#include <memory>

namespace sieve::attention::cuda {

/// Milliseconds between CUDA events recorded on the default stream before and after fn() (which
/// enqueues GPU work); synchronises on the second event. The timing primitive of HostWorkload and
/// of the GPU benchmarks. @throws sieve::Error when an event call fails
double event_ms(const std::function<void()>& fn);

struct HostRunTimes {
  double select_ms = 0, execute_ms = 0;
  bool selector_on_device = false;
};

class HostWorkload {
 public:
  /// Uploads q [Hq, Lq, D], k, v [Hkv, Lk, D]. @throws sieve::Error without a device
  HostWorkload(const TensorView& q, const TensorView& k, const TensorView& v);
  ~HostWorkload();
  HostWorkload(const HostWorkload&) = delete;
  HostWorkload& operator=(const HostWorkload&) = delete;

  /// Dense attention on the GPU; returns the best time in ms; writes `out` (host, [Hq, Lq, D]).
  double dense(const AttentionOptions& opts, const TensorView& out, int repeat = 1);
  /// Selector + block-sparse executor; fills `pattern` (host copy) and `out` (host).
  HostRunTimes run(const PatternSelector& selector, const AttentionOptions& opts,
                   SparsePattern& pattern, const TensorView& out, int repeat = 1);
  /// Name of the kernel family the executor uses ("wgmma" or "mma.sync").
  const char* kernel_name() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sieve::attention::cuda
