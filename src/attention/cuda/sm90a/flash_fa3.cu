// Instantiations and host launcher of the warp-specialised Hopper attention kernel
// (flash_kernel_fa3.cuh); compiled only for sm_90a (see src/attention/CMakeLists.txt). The TMA
// tensor maps are encoded with the driver's cuTensorMapEncodeTiled, obtained through the runtime
// (cudaGetDriverEntryPointByVersion), so nothing links libcuda.
#include "../flash_configs.h"
#include "../flash_launch.h"
#include "../memory_pool.h"
#include "../tensor_map_encoder.h"
#include "sieve/attention/cuda/flash_kernel_fa3.cuh"

#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

// Opt-in instrumentation (off by default): built with -DSIEVE_FA3_TIMING=1, launches without token
// columns run the instrumented kernel instance while the environment sets SIEVE_FA3_TIMING, and
// each launch prints the phase durations of its CTAs to stdout (synchronising the stream).
#ifndef SIEVE_FA3_TIMING
#define SIEVE_FA3_TIMING 0
#endif

namespace sieve::attention::cuda {

namespace {

constexpr int kFa3TilesPerCta = 4;

// [heads, seq, d] with element strides (head, row): a 3-D map (d, seq, heads), box 64 x rows x 1,
// 128-byte swizzle, zeros outside the tensor.
template <class T>
bool encode(CUtensorMap* m, const void* base, int heads, int seq, int d, int64_t head_stride,
            int64_t row_stride, int box_rows) {
  const auto fn = detail::tensor_map_encoder();
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
              Cfg<__nv_bfloat16, kFa3D128, true>::kSmemBytes == kFa3D128.smem_bytes_columns());

// Work tiles per grid CTA: SIEVE_FA3_TPC (1-8, A/B only) or the default below.
int fa3_tiles_per_cta(const FlashParams& p) {
  const char* env = std::getenv("SIEVE_FA3_TPC");  // NOLINT(concurrency-mt-unsafe)
  int t = kFa3TilesPerCta;
  if (env != nullptr && *env != '\0') t = std::atoi(env);
  return std::clamp(t, 1, std::max(1, std::min(8, p.num_heads_q)));
}

#if SIEVE_FA3_TIMING
// Phase durations of one timed launch (stamps as documented at kFa3Stamps), in microseconds:
// mean / p10 / p50 / p90 over the CTAs, the idle gap between consecutive CTAs of one SM, and a
// least-squares line of CTA time against its tile count.
void report_timing(const std::vector<uint64_t>& h, unsigned gx, unsigned gy) {
  constexpr int K = kFa3Stamps;
  const int64_t n = int64_t(gx) * gy;
  const auto at = [&](int64_t c, int k) { return h[size_t(c * K + k)]; };
  std::vector<double> rate;
  for (int64_t c = 0; c < n; ++c)
    if (at(c, 10) > at(c, 0) && at(c, 15) > at(c, 14))
      rate.push_back(double(at(c, 15) - at(c, 14)) / double(at(c, 10) - at(c, 0)));
  std::sort(rate.begin(), rate.end());
  const double ns = rate.empty() ? 1.0 / 1.98 : rate[rate.size() / 2];  // ns per clock
  const auto us = [&](uint64_t a, uint64_t b) { return double(int64_t(b - a)) * ns * 1e-3; };
  struct Phase {
    const char* name;
    std::vector<double> v;
  };
  // From the CTA's first stamp: barrier, k0_issue, q_landed, k0_landed; then s0 (Q K0^T),
  // softmax0 (mask, softmax, pack of tile 0), per_tile (the loop / (tiles - 1)), last_pv,
  // epilogue0/1 (from the last P V to each warpgroup's end), total, and gap (SM idle between
  // consecutive CTAs).
  Phase ph[] = {{"barrier", {}},   {"unused", {}},    {"k0_issue", {}},  {"q_landed", {}},
                {"k0_landed", {}}, {"s0", {}},        {"softmax0", {}},  {"per_tile", {}},
                {"last_pv", {}},   {"epilogue0", {}}, {"epilogue1", {}}, {"total", {}},
                {"gap", {}}};
  double sx = 0, sy = 0, sxx = 0, sxy = 0, tiles = 0;
  struct Span {
    uint64_t b, e;
  };
  std::vector<std::vector<Span>> sm;
  for (int64_t c = 0; c < n; ++c) {
    const int nt = int(at(c, 12));
    const uint64_t end = std::max({at(c, 3), at(c, 10), at(c, 11)});
    ph[0].v.push_back(us(at(c, 0), at(c, 1)));
    if (nt > 0) {
      ph[2].v.push_back(us(at(c, 0), at(c, 2)));
      ph[4].v.push_back(us(at(c, 0), at(c, 5)));
      ph[5].v.push_back(us(at(c, 5), at(c, 6)));
      ph[6].v.push_back(us(at(c, 6), at(c, 7)));
      if (nt > 1) ph[7].v.push_back(us(at(c, 7), at(c, 8)) / (nt - 1));
      ph[8].v.push_back(us(at(c, 8), at(c, 9)));
      ph[9].v.push_back(us(at(c, 9), at(c, 10)));
      ph[10].v.push_back(us(at(c, 9), at(c, 11)));
    }
    ph[3].v.push_back(us(at(c, 0), at(c, 4)));
    const double tot = us(at(c, 0), end);
    ph[11].v.push_back(tot);
    sx += nt;
    sy += tot;
    sxx += double(nt) * nt;
    sxy += nt * tot;
    tiles += nt;
    const size_t id = size_t(at(c, 13));
    if (id >= sm.size()) sm.resize(id + 1);
    sm[id].push_back({at(c, 0), end});
  }
  double busy = 0, span = 0;
  for (auto& v : sm) {
    if (v.empty()) continue;
    std::sort(v.begin(), v.end(), [](const Span& a, const Span& b) { return a.b < b.b; });
    for (size_t i = 0; i < v.size(); ++i) {
      busy += us(v[i].b, v[i].e);
      if (i + 1 < v.size()) ph[12].v.push_back(us(v[i].e, v[i + 1].b));
    }
    span += us(v.front().b, v.back().e);
  }
  const double b = (n * sxy - sx * sy) / (n * sxx - sx * sx), a = (sy - b * sx) / n;
  std::printf("fa3-timing grid=%ux%u ctas=%ld tiles/cta=%.2f ns/clk=%.4f sms=%zu "
              "busy=%.1f%% fit: cta_us = %.2f + %.3f * tiles\n",
              gx, gy, long(n), tiles / double(n), ns, sm.size(),
              span > 0 ? 100.0 * busy / span : 0.0, a, b);
  std::printf("fa3-timing   phase(us)      mean     p10     p50     p90\n");
  for (Phase& q : ph) {
    if (q.v.empty()) continue;
    std::sort(q.v.begin(), q.v.end());
    double m = 0;
    for (double x : q.v) m += x;
    const auto pct = [&](double f) { return q.v[std::min(q.v.size() - 1, size_t(f * q.v.size()))]; };
    std::printf("fa3-timing   %-10s %8.3f %7.3f %7.3f %7.3f\n", q.name, m / q.v.size(), pct(0.1),
                pct(0.5), pct(0.9));
  }
  std::fflush(stdout);
}
#endif

// staged: the tensor maps of the staged keys and values (launch_staged), or null.
template <class Cfg, bool TIMING = false>
cudaError_t launch(FlashParams p, cudaStream_t stream, const CUtensorMap (*staged)[2] = nullptr) {
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
  if (staged != nullptr) {
    a.tkc = (*staged)[0];
    a.tvc = (*staged)[1];
    a.staged_columns = true;
  }
  if (!ok) {  // strides TMA cannot describe: the cp.async wgmma kernel takes any 16-byte layout
    return std::is_same_v<T, __nv_bfloat16> ? launch_flash_sm90_bf16(Cfg::kD, p, stream)
                                             : launch_flash_sm90_f16(Cfg::kD, p, stream);
  }
  auto* kernel = &flash_attention_fa3_kernel<Cfg, TIMING>;
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  if (err != cudaSuccess) return err;
  // Work tiles per CTA (query heads of one query block, one after another): the next tile's Q
  // and first K/V tiles load while the current one runs, which a new CTA could not overlap
  // (one CTA per SM). 1 for token columns and the instrumented instance.
  a.tiles_per_cta = (Cfg::kColumns || TIMING) ? 1 : fa3_tiles_per_cta(p);
  const dim3 grid(unsigned(p.num_m_tiles),
                  unsigned((p.num_heads_q + a.tiles_per_cta - 1) / a.tiles_per_cta));
  // O by TMA stores (64-row boxes, one per consumer warpgroup) where O is T and its strides fit
  // a tensor map; otherwise the kernel's per-thread stores.
  if constexpr (!Cfg::kColumns)
    a.tma_store = !p.out_f32 && encode<T>(&a.to, p.out, p.num_heads_q, p.seq_q, Cfg::kD,
                                          p.o_head_stride, p.o_row_stride, 64);
  if constexpr (TIMING) {
#if SIEVE_FA3_TIMING
    const size_t n = size_t(grid.x) * grid.y * kFa3Stamps;
    err = cudaMallocAsync(reinterpret_cast<void**>(&a.stamps), n * 8, stream);
    if (err != cudaSuccess) return err;
    err = cudaMemsetAsync(a.stamps, 0, n * 8, stream);
    if (err == cudaSuccess) {
      kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(a);
      err = cudaGetLastError();
    }
    std::vector<uint64_t> h(n);
    if (err == cudaSuccess)
      err = cudaMemcpyAsync(h.data(), a.stamps, n * 8, cudaMemcpyDeviceToHost, stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
    const cudaError_t freed = cudaFreeAsync(a.stamps, stream);
    if (err == cudaSuccess) report_timing(h, grid.x, grid.y);
    return err != cudaSuccess ? err : freed;
#endif
  }
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(a);
  return cudaGetLastError();
}

// Row e of the staged copy = K and V row columns[e] of the KV head of e's pattern head (zeros for
// a key outside [0, seq_k)), and the BN rows after the list's last entry are zeros: a column tile
// of the grid kernel starts at any entry of a CTA's list and reads BN rows, past the list's end
// too, where its mask drops them, and their V must be finite (P = 0 times V adds nothing). Grid:
// (ceil(seq_k / kStageRows), pattern heads): a list of distinct keys holds at most seq_k entries,
// so one round per CTA; longer lists take more rounds.
constexpr int kStageRows = 64, kStageThreads = 256;
template <class T>
__global__ void __launch_bounds__(kStageThreads) stage_columns_kernel(FlashParams p, T* kc, T* vc) {
  constexpr int C = 128 / 8;  // 16-byte chunks per row (head dim 128)
  const int ph = int(blockIdx.y);
  const int beg = __ldg(p.column_indptr + ph), end = __ldg(p.column_indptr + ph + 1);
  const uint4 zero = make_uint4(0, 0, 0, 0);
  if (blockIdx.x == 0 && ph == 0) {
    // (min: a list longer than its stated capacity is never written past the buffers)
    const int64_t nnz = min(int64_t(__ldg(p.column_indptr + gridDim.y)), p.columns_capacity);
    for (int i = int(threadIdx.x); i < 128 * C; i += kStageThreads) {
      const int64_t at = (nnz + i / C) * 128 + (i % C) * 8;
      *reinterpret_cast<uint4*>(kc + at) = zero;
      *reinterpret_cast<uint4*>(vc + at) = zero;
    }
  }
  const int hkv = ph * p.pattern_head_div / p.group;
  const T* gk = static_cast<const T*>(p.k) + hkv * p.k_head_stride;
  const T* gv = static_cast<const T*>(p.v) + hkv * p.v_head_stride;
  // kStageRows entries per CTA and round; more rounds only for a list longer than seq_k (a
  // device pattern with repeated keys), which the grid does not cover in one.
  const int64_t last = min(int64_t(end), p.columns_capacity);
  for (int64_t e0 = beg + int64_t(blockIdx.x) * kStageRows; e0 < last;
       e0 += int64_t(gridDim.x) * kStageRows)
    for (int i = int(threadIdx.x); i < kStageRows * C; i += kStageThreads) {
      const int64_t e = e0 + i / C;
      const int c = i % C;
      if (e >= last) break;  // i / C grows with i
      const int j = __ldg(p.columns + e);
      const bool ok = j >= 0 && j < p.seq_k;
      const int64_t at = e * 128 + c * 8;
      *reinterpret_cast<uint4*>(kc + at) =
          ok ? __ldg(reinterpret_cast<const uint4*>(gk + int64_t(j) * p.k_row_stride + c * 8))
             : zero;
      *reinterpret_cast<uint4*>(vc + at) =
          ok ? __ldg(reinterpret_cast<const uint4*>(gv + int64_t(j) * p.v_row_stride + c * 8))
             : zero;
    }
}

// Token columns on the grid kernel: the list's keys and values copied into two stream-ordered
// buffers of capacity + BN rows (stage_columns_kernel), so that every column tile is one TMA copy
// like a contiguous tile, with 240 consumer registers, several work tiles per CTA and O by TMA
// stores, instead of 128 producer threads resolving and gathering each tile. The buffers are
// sized by the pattern's column capacity (no host synchronisation for the actual count) and freed
// in stream order after the launch. When they cannot be allocated or mapped, the column instance
// runs instead.
template <class T>
cudaError_t launch_staged(const FlashParams& p, cudaStream_t stream) {
  using G = Cfg<T, kFa3D128, false>;
  const int heads = p.num_heads_q / p.pattern_head_div;
  const int64_t rows = p.columns_capacity + G::kBN;
  const size_t bytes = size_t(rows) * G::kD * sizeof(T);
  // The selectors' 4 GiB plus these buffers: freed after every call, they would otherwise be
  // returned to the system at the next synchronisation (and the selectors' scratch with them).
  keep_pool_memory((uint64_t(4) << 30) + 2 * uint64_t(bytes));
  void* kc = nullptr;
  void* vc = nullptr;
  CUtensorMap maps[2];  // rows of D contiguous elements, one "head"
  const bool ready = cudaMallocAsync(&kc, bytes, stream) == cudaSuccess &&
                     cudaMallocAsync(&vc, bytes, stream) == cudaSuccess &&
                     encode<T>(&maps[0], kc, 1, int(rows), G::kD, rows * G::kD, G::kD, G::kBN) &&
                     encode<T>(&maps[1], vc, 1, int(rows), G::kD, rows * G::kD, G::kD, G::kBN);
  cudaError_t err = cudaSuccess;
  if (!ready) {
    (void)cudaGetLastError();  // a failed allocation: gather the columns instead
    err = launch<Cfg<T, kFa3D128, true>>(p, stream);
  } else {
    const dim3 grid(unsigned((p.seq_k + kStageRows - 1) / kStageRows), unsigned(heads));
    stage_columns_kernel<T><<<grid, kStageThreads, 0, stream>>>(p, static_cast<T*>(kc),
                                                                 static_cast<T*>(vc));
    err = cudaGetLastError();
    if (err == cudaSuccess) err = launch<G>(p, stream, &maps);
  }
  const cudaError_t f1 = kc ? cudaFreeAsync(kc, stream) : cudaSuccess;
  const cudaError_t f2 = vc ? cudaFreeAsync(vc, stream) : cudaSuccess;
  return err != cudaSuccess ? err : (f1 != cudaSuccess ? f1 : f2);
}

// Patterns with token columns: the grid kernel on staged columns, or the gathering instance.
template <class T>
cudaError_t launch_instance(const FlashParams& p, cudaStream_t stream) {
  if (p.column_indptr) {
    if (fa3_stage_columns() && p.columns_capacity > 0 && p.seq_k > 0)
      return launch_staged<T>(p, stream);
    return launch<Cfg<T, kFa3D128, true>>(p, stream);
  }
#if SIEVE_FA3_TIMING
  if (std::getenv("SIEVE_FA3_TIMING")) return launch<Cfg<T, kFa3D128, false>, true>(p, stream);
#endif
  return launch<Cfg<T, kFa3D128, false>>(p, stream);
}

}  // namespace

bool fa3_stage_columns() {
  const char* env = std::getenv("SIEVE_FA3_COLUMNS");  // NOLINT(concurrency-mt-unsafe)
  return env == nullptr || std::strcmp(env, "gather") != 0;
}

cudaError_t launch_flash_fa3_bf16(int head_dim, const FlashParams& p, cudaStream_t stream) {
  if (head_dim != 128) return cudaErrorInvalidValue;
  return launch_instance<__nv_bfloat16>(p, stream);
}
cudaError_t launch_flash_fa3_f16(int head_dim, const FlashParams& p, cudaStream_t stream) {
  if (head_dim != 128) return cudaErrorInvalidValue;
  return launch_instance<__half>(p, stream);
}

}  // namespace sieve::attention::cuda
