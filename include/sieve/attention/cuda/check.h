// SIEVE_CUDA_CHECK: turns a failed CUDA runtime call into sieve::Error naming the call.
// Host-side only; includes the CUDA runtime header (not part of the CUDA-free public API). The
// message is formatted out of line, so the macro also works in nvcc-compiled code.
#pragma once

#include <cuda_runtime.h>

namespace sieve::attention::cuda::detail {
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
}  // namespace sieve::attention::cuda::detail

#define SIEVE_CUDA_CHECK(expr)                                                                \
  do {                                                                                        \
    const cudaError_t sieve_cuda_err_ = (expr);                                               \
    if (sieve_cuda_err_ != cudaSuccess) [[unlikely]] {                                        \
      ::sieve::attention::cuda::detail::throw_cuda_error(sieve_cuda_err_, #expr, __FILE__, __LINE__); \
    }                                                                                         \
  } while (0)
