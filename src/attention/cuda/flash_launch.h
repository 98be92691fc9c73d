// Internal: type-erased launchers of the flash attention instantiations (flash_bf16.cu, flash_f16.cu).
#pragma once

#include "sieve/attention/cuda/flash_params.h"

#include <cuda_runtime.h>

namespace sieve::attention::cuda {

/// Asynchronous launch on `stream`; cudaErrorInvalidValue for a head dim without an instance.
cudaError_t launch_flash_bf16(int head_dim, const FlashParams& p, cudaStream_t stream);
cudaError_t launch_flash_f16(int head_dim, const FlashParams& p, cudaStream_t stream);

}  // namespace sieve::attention::cuda
