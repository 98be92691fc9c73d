// Internal: type-erased launchers of the flash attention instantiations (flash_bf16.cu,
// flash_f16.cu: mma.sync for sm_80+; sm90a/flash_sm90.cu: wgmma for sm_90a; sm90a/flash_fa3.cu:
// warp-specialised TMA + wgmma for sm_90a).
#pragma once

#include "sieve/attention/cuda/flash_params.h"

#include <cuda_runtime.h>

namespace sieve::attention::cuda {

/// Asynchronous launch on `stream`; cudaErrorInvalidValue for a head dim without an instance.
cudaError_t launch_flash_bf16(int head_dim, const FlashParams& p, cudaStream_t stream);
cudaError_t launch_flash_f16(int head_dim, const FlashParams& p, cudaStream_t stream);
/// Hopper (wgmma, sm_90a) kernel; only valid on compute capability 9.0 devices.
cudaError_t launch_flash_sm90_bf16(int head_dim, const FlashParams& p, cudaStream_t stream);
cudaError_t launch_flash_sm90_f16(int head_dim, const FlashParams& p, cudaStream_t stream);
/// Warp-specialised Hopper kernel (TMA producer, sm_90a), head dim 128 only. Falls back to the
/// wgmma kernel when the inputs' strides admit no TMA tensor map. Patterns with token columns run
/// the same grid kernel on a staged copy of the listed keys (fa3_stage_columns()), or the
/// instance that gathers each column tile.
cudaError_t launch_flash_fa3_bf16(int head_dim, const FlashParams& p, cudaStream_t stream);
cudaError_t launch_flash_fa3_f16(int head_dim, const FlashParams& p, cudaStream_t stream);
/// Whether fa3 stages token columns (the default) rather than gathering them per tile: false
/// while the environment sets SIEVE_FA3_COLUMNS=gather (A/B runs and tests).
bool fa3_stage_columns();

}  // namespace sieve::attention::cuda
