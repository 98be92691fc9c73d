#include "bench_kernels.h"

#include "sieve/attention/cuda/flash_kernel.cuh"
#include "sieve/attention/cuda/flash_kernel_sm90.cuh"

namespace sieve::bench {

namespace {

__device__ uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Sum of 4 uniforms, scaled to variance sigma^2.
__global__ void fill_kernel(__nv_bfloat16* p, int64_t n, uint64_t seed, float sigma) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t r = mix64(seed * 0x100000001b3ull + uint64_t(i));
    float s = 0;
    for (int k = 0; k < 4; ++k) s += float((r >> (16 * k)) & 0xffff) * (1.f / 65536.f) - 0.5f;
    p[i] = __float2bfloat16(s * 1.7320508f * sigma);
  }
}

__global__ void mismatch_kernel(const uint16_t* a, const uint16_t* b, int64_t n,
                                unsigned long long* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if (a[i] != b[i]) atomicAdd(out, 1ull);
    if ((a[i] & 0x7fff) > 0x7f80) atomicAdd(out + 1, 1ull);
  }
}

}  // namespace

void fill_random_bf16(void* p, int64_t n, uint64_t seed, float sigma) {
  fill_kernel<<<1024, 256>>>(static_cast<__nv_bfloat16*>(p), n, seed, sigma);
}

void count_mismatch_u16(const void* a, const void* b, int64_t n, unsigned long long out[2]) {
  unsigned long long* d = nullptr;
  out[0] = out[1] = ~0ull;
  if (cudaMalloc(&d, 16) != cudaSuccess) return;
  cudaMemset(d, 0, 16);
  mismatch_kernel<<<1024, 256>>>(static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), n, d);
  cudaMemcpy(out, d, 16, cudaMemcpyDeviceToHost);
  cudaFree(d);
}

namespace {
// Weights of two partial attentions with LSE a and b: exp(a - m), exp(b - m) for m = max(a, b);
// both 0 when neither row saw a key.
__device__ __forceinline__ float2 lse_weights(float a, float b, float& m) {
  m = fmaxf(a, b);
  return m == -INFINITY ? make_float2(0.f, 0.f) : make_float2(__expf(a - m), __expf(b - m));
}

// One thread per output element pair: row r of head h of the later pass (rows_b rows a head)
// merges into row row0 + r of the earlier pass's output (rows_a rows a head), in place.
__global__ void merge_lse_kernel(__nv_bfloat16* o_a, const float* lse_a, const __nv_bfloat16* o_b,
                                 const float* lse_b, int heads, int64_t rows_a, int64_t rows_b,
                                 int64_t row0, int d) {
  const int64_t n = int64_t(heads) * rows_b * (d / 2);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c2 = e % (d / 2), hr = e / (d / 2), h = hr / rows_b, r = hr % rows_b;
    const int64_t ra = h * rows_a + row0 + r, rb = h * rows_b + r;
    float m;
    const float2 w = lse_weights(lse_a[ra], lse_b[rb], m);
    const float inv = 1.f / fmaxf(w.x + w.y, 1e-30f);
    __nv_bfloat162* pa = reinterpret_cast<__nv_bfloat162*>(o_a + ra * d) + c2;
    const __nv_bfloat162 xb = reinterpret_cast<const __nv_bfloat162*>(o_b + rb * d)[c2];
    const float2 fa = __bfloat1622float2(*pa), fb = __bfloat1622float2(xb);
    *pa = __floats2bfloat162_rn((w.x * fa.x + w.y * fb.x) * inv, (w.x * fa.y + w.y * fb.y) * inv);
  }
}

// The merged rows' LSE, after merge_lse_kernel has read the old one (stream order).
__global__ void merge_lse_rows_kernel(float* lse_a, const float* lse_b, int heads, int64_t rows_a,
                                      int64_t rows_b, int64_t row0) {
  const int64_t n = int64_t(heads) * rows_b;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ra = (e / rows_b) * rows_a + row0 + e % rows_b;
    float m;
    const float2 w = lse_weights(lse_a[ra], lse_b[e], m);
    lse_a[ra] = m == -INFINITY ? m : m + logf(w.x + w.y);
  }
}
}  // namespace

void merge_lse_bf16(void* o_a, float* lse_a, const void* o_b, const float* lse_b, int heads,
                    int64_t rows_a, int64_t rows_b, int64_t row0, int d, bool update_lse,
                    cudaStream_t stream) {
  merge_lse_kernel<<<132 * 8, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(o_a), lse_a,
                                                static_cast<const __nv_bfloat16*>(o_b), lse_b, heads,
                                                rows_a, rows_b, row0, d);
  if (update_lse)
    merge_lse_rows_kernel<<<132 * 4, 256, 0, stream>>>(lse_a, lse_b, heads, rows_a, rows_b, row0);
}

#ifdef SIEVE_GPU_BENCH_VARIANTS
namespace {
using T = __nv_bfloat16;
using namespace attention::cuda;
template <class Cfg, bool kSm90>
VariantInfo info(const char* name) {
  VariantInfo v;
  v.name = name;
  cudaFuncAttributes fa{};
  const void* k = nullptr;
  if constexpr (kSm90) k = reinterpret_cast<const void*>(flash_attention_sm90_kernel<Cfg>);
  else k = reinterpret_cast<const void*>(flash_attention_kernel<Cfg>);
  cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  cudaFuncGetAttributes(&fa, k);
  v.regs = fa.numRegs;
  v.local_bytes = int(fa.localSizeBytes);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v.ctas_per_sm, k, Cfg::kThreads, Cfg::kSmemBytes);
  return v;
}
using V0 = FlashConfig<T, 128, 32, 4, 2, false>;
using V1 = FlashConfig<T, 128, 64, 4, 2, false>;
using W0 = FlashConfigSm90<T, 128, 128, 1>;
using W1 = FlashConfigSm90<T, 128, 64, 1>;
using W2 = FlashConfigSm90<T, 128, 64, 2>;
}  // namespace

int num_variants() { return 5; }
VariantInfo variant_info(int i) {
  switch (i) {
    case 0: return info<V0, false>("mma_bn32_w4_mt2");
    case 1: return info<V1, false>("mma_bn64_w4_mt2");
    case 2: return info<W0, true>("wgmma_bn128");
    case 3: return info<W1, true>("wgmma_bn64");
    default: return info<W2, true>("wgmma_bn64_2cta");
  }
}
cudaError_t launch_variant(int i, const attention::cuda::FlashParams& p, cudaStream_t s) {
  switch (i) {
    case 0: return launch_flash_attention<V0>(p, s);
    case 1: return launch_flash_attention<V1>(p, s);
    case 2: return launch_flash_attention_sm90<W0>(p, s);
    case 3: return launch_flash_attention_sm90<W1>(p, s);
    default: return launch_flash_attention_sm90<W2>(p, s);
  }
}
#else
int num_variants() { return 0; }
VariantInfo variant_info(int) { return {}; }
cudaError_t launch_variant(int, const attention::cuda::FlashParams&, cudaStream_t) { return cudaErrorNotSupported; }
#endif

}  // namespace sieve::bench
