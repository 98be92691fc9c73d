// Instantiations and host launcher of the warp-specialised Hopper attention kernel
// (flash_kernel_fa3.cuh); compiled only for sm_90a (see src/attention/CMakeLists.txt). The TMA
// tensor maps are encoded with the driver's cuTensorMapEncodeTiled, obtained through the runtime
// (cudaGetDriverEntryPointByVersion), so nothing links libcuda.
#include "../flash_configs.h"
#include "../flash_launch.h"
#include "sieve/attention/cuda/flash_kernel_fa3.cuh"

#include <cudaTypedefs.h>

#include <algorithm>
#include <limits>
#include <type_traits>

namespace sieve::attention::cuda {

namespace {

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
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

// [heads, seq, d] with element strides (head, row): a 3-D map (d, seq, heads), box 64 x rows x 1,
// 128-byte swizzle, zeros outside the tensor.
template <class T>
bool encode(CUtensorMap* m, const void* base, int heads, int seq, int d, int64_t head_stride,
            int64_t row_stride, int box_rows) {
  const auto fn = encode_fn();
  if (!fn) return false;
  // A single head's stride is never used; any valid value will do.
  if (heads == 1) head_stride = row_stride * seq;
  const cuuint64_t dims[3] = {cuuint64_t(d), cuuint64_t(seq), cuuint64_t(heads)};
  const cuuint64_t strides[2] = {cuuint64_t(row_stride) * 2, cuuint64_t(head_stride) * 2};
  const cuuint32_t box[3] = {64, cuuint32_t(box_rows), 1};
  const cuuint32_t elem[3] = {1, 1, 1};
  const CUtensorMapDataType dt = std::is_same_v<T, __nv_bfloat16>
                                     ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                     : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  return fn(m, dt, 3, const_cast<void*>(base), dims, strides, box, elem,
            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <class T, FlashShapeFa3 S, bool COLUMNS>
using Cfg = FlashConfigFa3<T, S.head_dim, S.block_n, S.stages, COLUMNS>;
static_assert(Cfg<__nv_bfloat16, kFa3D128, false>::kSmemBytes == kFa3D128.smem_bytes() &&
              Cfg<__nv_bfloat16, kFa3D128, true>::kSmemBytes == kFa3D128.smem_bytes_columns() &&
              Cfg<__nv_bfloat16, kFa3D128, false>::kSmemBytesPersistent ==
                  kFa3D128.smem_bytes_persistent());

// Multiprocessor count of the current device (the persistent grid's size).
int sm_count() {
  int dev = 0, n = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return 1;
  }
  return n;
}

template <class Cfg>
cudaError_t launch(FlashParams p, cudaStream_t stream, int ctas) {
  using T = typename Cfg::T;
  p.num_m_tiles = (p.seq_q + Cfg::kBM - 1) / Cfg::kBM;
  if (p.num_m_tiles == 0) return cudaSuccess;
  Fa3Args a;
  a.p = p;
  const int heads_kv = p.num_heads_q / p.group;
  const bool ok = encode<T>(&a.tq, p.q, p.num_heads_q, p.seq_q, Cfg::kD, p.q_head_stride,
                            p.q_row_stride, Cfg::kBM) &&
                  encode<T>(&a.tk, p.k, heads_kv, p.seq_k, Cfg::kD, p.k_head_stride, p.k_row_stride,
                            Cfg::kBN) &&
                  encode<T>(&a.tv, p.v, heads_kv, p.seq_k, Cfg::kD, p.v_head_stride, p.v_row_stride,
                            Cfg::kBN);
  if (!ok) {  // strides TMA cannot describe: the cp.async wgmma kernel takes any 16-byte layout
    return std::is_same_v<T, __nv_bfloat16> ? launch_flash_sm90_bf16(Cfg::kD, p, stream)
                                             : launch_flash_sm90_f16(Cfg::kD, p, stream);
  }
  if (ctas < 0) {  // one CTA per (query block, head)
    auto* kernel = &flash_attention_fa3_kernel<Cfg>;
    cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
    if (err != cudaSuccess) return err;
    const dim3 grid(unsigned(p.num_m_tiles), unsigned(p.num_heads_q));
    kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(a);
    return cudaGetLastError();
  }
  if constexpr (Cfg::kColumns) {
    return cudaErrorInvalidValue;  // the host runs patterns with token columns on the grid
  } else {
    // Persistent. Work tiles are numbered in int (plus up to a grid's worth of claims past the
    // last); one CTA per SM (shared memory allows no second), never more than work tiles, and a
    // zeroed tile counter of its own (stream-ordered, so concurrent launches never share one).
    const int64_t tiles = int64_t(p.num_m_tiles) * p.num_heads_q;
    if (tiles > std::numeric_limits<int>::max() - (1 << 20)) return cudaErrorInvalidValue;
    auto* kernel = &flash_attention_fa3_persistent_kernel<Cfg>;
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           Cfg::kSmemBytesPersistent);
    if (err != cudaSuccess) return err;
    int* counter = nullptr;
    err = cudaMallocAsync(reinterpret_cast<void**>(&counter), sizeof(int), stream);
    if (err != cudaSuccess) return err;
    const unsigned grid = unsigned(std::min<int64_t>(tiles, ctas > 0 ? ctas : sm_count()));
    err = cudaMemsetAsync(counter, 0, sizeof(int), stream);
    if (err == cudaSuccess) {
      kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytesPersistent, stream>>>(a, counter);
      err = cudaGetLastError();
    }
    const cudaError_t freed = cudaFreeAsync(counter, stream);
    return err != cudaSuccess ? err : freed;
  }
}

// Patterns with token columns take the instance that gathers column tiles (grid schedule only).
template <class T>
cudaError_t launch_instance(const FlashParams& p, cudaStream_t stream, int ctas) {
  if (p.column_indptr)
    return ctas < 0 ? launch<Cfg<T, kFa3D128, true>>(p, stream, ctas) : cudaErrorInvalidValue;
  return launch<Cfg<T, kFa3D128, false>>(p, stream, ctas);
}

}  // namespace

cudaError_t launch_flash_fa3_bf16(int head_dim, const FlashParams& p, cudaStream_t stream,
                                  int ctas) {
  if (head_dim != 128) return cudaErrorInvalidValue;
  return launch_instance<__nv_bfloat16>(p, stream, ctas);
}
cudaError_t launch_flash_fa3_f16(int head_dim, const FlashParams& p, cudaStream_t stream,
                                 int ctas) {
  if (head_dim != 128) return cudaErrorInvalidValue;
  return launch_instance<__half>(p, stream, ctas);
}

}  // namespace sieve::attention::cuda
