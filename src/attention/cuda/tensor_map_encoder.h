// Internal: the driver's cuTensorMapEncodeTiled (TMA tensor map encoding, CUDA 12.0 ABI), looked
// up once through the runtime (cudaGetDriverEntryPointByVersion) so that nothing links libcuda.
// Used by the host launchers of the TMA kernels (sm90a/flash_fa3.cu, selectors' sm90a/xattn_tma.cu).
#pragma once

#include <cuda_runtime.h>
#include <cudaTypedefs.h>

namespace sieve::attention::cuda::detail {

/// The encoder, or null when the driver does not provide it (the caller reports failure).
inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000,
                                                           cudaEnableDefault, &q);
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      return PFN_cuTensorMapEncodeTiled_v12000(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

}  // namespace sieve::attention::cuda::detail
