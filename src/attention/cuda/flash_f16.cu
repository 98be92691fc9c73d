// Instantiations of the flash attention kernel for f16 inputs (head dims 64 and 128).
#include "flash_configs.h"
#include "flash_launch.h"
#include "sieve/attention/cuda/flash_kernel.cuh"

namespace sieve::attention::cuda {

template <FlashShape S>
using Cfgf16 = FlashConfig<__half, S.head_dim, S.block_n, S.warps, S.m_tiles, S.q_in_regs>;

cudaError_t launch_flash_f16(int head_dim, const FlashParams& p, cudaStream_t stream) {
  switch (head_dim) {
    case 64: return launch_flash_attention<Cfgf16<kFlashD64>>(p, stream);
    case 128: return launch_flash_attention<Cfgf16<kFlashD128>>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace sieve::attention::cuda
