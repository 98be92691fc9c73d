// Instantiations of the Hopper (wgmma) attention kernel; compiled only for sm_90a
// (see src/attention/CMakeLists.txt).
#include "../flash_configs.h"
#include "../flash_launch.h"
#include "sieve/attention/cuda/flash_kernel_sm90.cuh"

namespace sieve::attention::cuda {

namespace {
template <class T, FlashShapeSm90 S>
using Cfg = FlashConfigSm90<T, S.head_dim, S.block_n, S.min_blocks>;

template <class T>
cudaError_t dispatch(int head_dim, const FlashParams& p, cudaStream_t stream) {
  switch (head_dim) {
    case 64: return launch_flash_attention_sm90<Cfg<T, kSm90D64>>(p, stream);
    case 128: return launch_flash_attention_sm90<Cfg<T, kSm90D128>>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}
}  // namespace

cudaError_t launch_flash_sm90_bf16(int head_dim, const FlashParams& p, cudaStream_t stream) {
  return dispatch<__nv_bfloat16>(head_dim, p, stream);
}
cudaError_t launch_flash_sm90_f16(int head_dim, const FlashParams& p, cudaStream_t stream) {
  return dispatch<__half>(head_dim, p, stream);
}

}  // namespace sieve::attention::cuda
