#include "sieve/attention/cuda/check.h"

#include "sieve/core/error.h"

namespace sieve::attention::cuda::detail {

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  (void)cudaGetLastError();  // clear a non-sticky error so that later calls start clean
  ::sieve::detail::throw_error(file, line,
                               fmt::format("CUDA error {} ({}) in {}", cudaGetErrorName(err),
                                           cudaGetErrorString(err), expr));
}

}  // namespace sieve::attention::cuda::detail
