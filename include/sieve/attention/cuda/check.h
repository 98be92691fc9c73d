// SIEVE_CUDA_CHECK: turns a failed CUDA runtime call into sieve::Error naming the call.
// Host-side only; includes the CUDA runtime header (not part of the CUDA-free public API). The
// message is formatted out of line, so the macro also works in nvcc-compiled code.
#pragma once

#include <cuda_runtime.h>

namespace sieve::attention::cuda::detail {
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
/// Whether the current device has compute capability 9.0 (H100/H200), where the sm_90a kernels
/// (wgmma, fa3, the selectors' wgmma instances) run; false when there is no device.
bool device_is_sm90();
}  // namespace sieve::attention::cuda::detail

#define SIEVE_CUDA_CHECK(expr)                                                                \
  do {                                                                                        \
    const cudaError_t sieve_cuda_err_ = (expr);                                               \
    if (sieve_cuda_err_ != cudaSuccess) [[unlikely]] {                                        \
      ::sieve::attention::cuda::detail::throw_cuda_error(sieve_cuda_err_, #expr, __FILE__, __LINE__); \
    }                                                                                         \
  } while (0)
