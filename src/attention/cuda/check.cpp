#include "sieve/attention/cuda/check.h"

#include "sieve/core/error.h"

namespace sieve::attention::cuda::detail {

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  (void)cudaGetLastError();  // clear a non-sticky error so that later calls start clean
  ::sieve::detail::throw_error(file, line,
                               fmt::format("CUDA error {} ({}) in {}", cudaGetErrorName(err),
                                           cudaGetErrorString(err), expr));
}

bool device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return major == 9 && minor == 0;
}

}  // namespace sieve::attention::cuda::detail
