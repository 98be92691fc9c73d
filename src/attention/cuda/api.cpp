#include "sieve/attention/cuda/api.h"

#include "flash_configs.h"
#include "flash_launch.h"
#include "sieve/attention/cuda/check.h"
#include "sieve/attention/cuda/flash_params.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <numbers>

namespace sieve::attention::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device / no driver" status
    return 0;
  }
  return n;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> b{"cpu"};
  if (device_count() > 0) b.push_back("cuda");
  return b;
}

namespace {

std::atomic<int> g_preference{0};  // 0 auto, 1 mma.sync, 2 wgmma, 3 fa3, 4 fa3grid
// "fa3grid" runs the same fa3 kernel as "fa3", reported under its own name: it named the grid
// schedule while the fa3 kernel also had a persistent one (measured slower and removed;
// docs/cuda.md, fa3 kernel) and stays accepted as before.
// Patterns with token columns under "auto" on compute capability 9.0, head dim 128: the fa3
// instance that gathers column tiles rather than the wgmma kernel; chosen from
// the H200 comparison in docs/results/gpu-attention.md. A forced "fa3" runs it either way.
constexpr bool kFa3Columns = true;

void check_supported(DType dtype, int64_t head_dim) {
  SIEVE_CHECK(dtype == DType::kBF16 || dtype == DType::kF16,
              "CUDA attention takes bf16 or f16 inputs, got {}", dtype_name(dtype));
  SIEVE_CHECK(head_dim == 64 || head_dim == 128, "CUDA attention supports head_dim 64 or 128, got {}",
              head_dim);
}

}  // namespace

void set_kernel_preference(std::string_view name) {
  if (name == "auto") g_preference = 0;
  else if (name == "mma" || name == "mma.sync") g_preference = 1;
  else if (name == "wgmma") g_preference = 2;
  else if (name == "fa3") g_preference = 3;
  else if (name == "fa3grid") g_preference = 4;
  else SIEVE_FAIL("unknown CUDA kernel '{}' (auto, mma, wgmma, fa3, fa3grid)", name);
}

KernelInfo kernel_info(DType dtype, int64_t head_dim, int64_t block_k, bool token_columns) {
  check_supported(dtype, head_dim);
  int pref = g_preference.load();
  // fa3: head dim 128, whole 128-key tiles per pattern block. Token columns run its column
  // instance, under "auto" only while kFa3Columns.
  const FlashShapeFa3& f = kFa3D128;
  const bool fa3_fits = head_dim == f.head_dim && (block_k == 0 || block_k % f.block_n == 0);
  const char* fa3_name = pref == 4 ? "fa3grid" : "fa3";
  if (pref == 4) pref = 3;  // the fa3 kernel under its other name
  if (pref == 3) {
    SIEVE_CHECK(detail::device_is_sm90(), "the fa3 kernel needs a compute capability 9.0 device");
    SIEVE_CHECK(fa3_fits,
                "the fa3 kernel needs head_dim 128 and block_k a multiple of {} (head_dim {}, "
                "block_k {})",
                f.block_n, head_dim, block_k);
  }
  if (pref == 3 || (pref == 0 && fa3_fits && (!token_columns || kFa3Columns) &&
                    detail::device_is_sm90()))
    return KernelInfo{fa3_name, f.block_m(), f.block_n, f.threads(),
                      token_columns && !fa3_stage_columns() ? f.smem_bytes_columns()
                                                            : f.smem_bytes()};
  const FlashShapeSm90& h = head_dim == 64 ? kSm90D64 : kSm90D128;
  const bool fits = block_k == 0 || block_k % h.block_n == 0;
  bool wgmma = pref != 1 && fits && detail::device_is_sm90();
  if (pref == 2) {
    SIEVE_CHECK(detail::device_is_sm90(), "the wgmma kernel needs a compute capability 9.0 device");
    SIEVE_CHECK(fits, "the wgmma kernel needs block_k to be a multiple of {}, got {}", h.block_n, block_k);
    wgmma = true;
  }
  if (wgmma) return KernelInfo{"wgmma", h.block_m(), h.block_n, h.threads(), h.smem_bytes()};
  const FlashShape& s = head_dim == 64 ? kFlashD64 : kFlashD128;
  return KernelInfo{"mma.sync", s.block_m(), s.block_n, s.threads(), s.smem_bytes()};
}

namespace {

void check_device_pointer(const void* p, const char* what) {
  cudaPointerAttributes a{};
  const cudaError_t e = cudaPointerGetAttributes(&a, p);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    SIEVE_FAIL("{}: cannot query the pointer ({})", what, cudaGetErrorString(e));
  }
  SIEVE_CHECK(a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged,
              "{} must point to device memory (cudaMalloc), got host memory", what);
}

// cp.async moves 16-byte chunks: base 16-byte aligned, head and row strides multiples of 8.
void check_vector_layout(const TensorView& t, const char* what) {
  SIEVE_CHECK(reinterpret_cast<uintptr_t>(t.data) % 16 == 0, "{} must be 16-byte aligned", what);
  SIEVE_CHECK(t.strides[0] % 8 == 0 && t.strides[1] % 8 == 0,
              "{} strides ({}, {}) must be multiples of 8 elements for the CUDA kernel", what,
              t.strides[0], t.strides[1]);
}

struct Prepared {
  FlashParams p;
  AttentionShape shape;
  DType dtype;
};

Prepared prepare(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out,
                 const AttentionOptions& opts, const TensorView* lse) {
  const AttentionShape s = check_attention_inputs(q, k, v, &out, lse);
  check_supported(q.dtype, s.head_dim);
  constexpr int64_t kMaxLen = std::numeric_limits<int32_t>::max() - 1024;
  SIEVE_CHECK(s.seq_len_k <= kMaxLen, "seq_len_k {} too long for the CUDA kernel", s.seq_len_k);
  Prepared r;
  r.shape = s;
  r.dtype = q.dtype;
  FlashParams& p = r.p;
  if (s.seq_len_q == 0) return r;
  check_device_pointer(q.data, "q");
  check_device_pointer(k.data, "k");
  check_device_pointer(v.data, "v");
  check_device_pointer(out.data, "out");
  check_vector_layout(q, "q");
  check_vector_layout(k, "k");
  check_vector_layout(v, "v");
  SIEVE_CHECK(reinterpret_cast<uintptr_t>(out.data) % 8 == 0 && out.strides[0] % 2 == 0 &&
                  out.strides[1] % 2 == 0,
              "out must be 8-byte aligned with even strides for the CUDA kernel");
  if (lse) check_device_pointer(lse->data, "lse");
  p.q = q.data;
  p.k = k.data;
  p.v = v.data;
  p.out = out.data;
  p.lse = lse ? static_cast<float*>(lse->data) : nullptr;
  p.q_head_stride = q.strides[0];
  p.q_row_stride = q.strides[1];
  p.k_head_stride = k.strides[0];
  p.k_row_stride = k.strides[1];
  p.v_head_stride = v.strides[0];
  p.v_row_stride = v.strides[1];
  p.o_head_stride = out.strides[0];
  p.o_row_stride = out.strides[1];
  if (lse) {
    p.lse_head_stride = lse->strides[0];
    p.lse_row_stride = lse->strides[1];
  }
  p.seq_q = int(s.seq_len_q);
  p.seq_k = int(s.seq_len_k);
  p.num_heads_q = int(s.num_heads_q);
  p.group = int(s.group_size());
  p.q_offset = int(s.q_offset());
  p.scale_log2 = effective_scale(opts, s.head_dim) * std::numbers::log2e_v<float>;
  p.causal = opts.causal;
  p.out_f32 = out.dtype == DType::kF32;
  SIEVE_CHECK(s.num_heads_q <= 65535, "at most 65535 query heads on the CUDA kernel, got {}",
              s.num_heads_q);
  return r;
}

void launch(const Prepared& r, const KernelInfo& k, Stream stream) {
  if (r.shape.seq_len_q == 0) return;
  const int d = int(r.shape.head_dim);
  const bool bf16 = r.dtype == DType::kBF16;
  const std::string_view name = k.name;
  cudaError_t e;
  if (name.starts_with("fa3")) {
    e = bf16 ? launch_flash_fa3_bf16(d, r.p, stream) : launch_flash_fa3_f16(d, r.p, stream);
  } else if (name == "wgmma") {
    e = bf16 ? launch_flash_sm90_bf16(d, r.p, stream) : launch_flash_sm90_f16(d, r.p, stream);
  } else {
    e = bf16 ? launch_flash_bf16(d, r.p, stream) : launch_flash_f16(d, r.p, stream);
  }
  SIEVE_CHECK(e == cudaSuccess, "CUDA attention launch ({}) failed: {}", k.name, cudaGetErrorString(e));
}

}  // namespace

void dense_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                     const TensorView& out, const AttentionOptions& opts, const TensorView* maybe_lse,
                     Stream stream) {
  Prepared r = prepare(q, k, v, out, opts, maybe_lse);
  r.p.sparse = false;
  launch(r, kernel_info(q.dtype, r.shape.head_dim), stream);
}

void block_sparse_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                            const DevicePatternView& pat, const TensorView& out,
                            const AttentionOptions& opts, const TensorView* maybe_lse,
                            Stream stream) {
  Prepared r = prepare(q, k, v, out, opts, maybe_lse);
  const AttentionShape& s = r.shape;
  SIEVE_CHECK(pat.seq_len_q == s.seq_len_q && pat.seq_len_k == s.seq_len_k,
              "pattern is for lengths ({}, {}) but the inputs have ({}, {})", pat.seq_len_q,
              pat.seq_len_k, s.seq_len_q, s.seq_len_k);
  const int64_t heads = pat.per_kv_head ? s.num_heads_kv : s.num_heads_q;
  SIEVE_CHECK(pat.num_heads == heads, "pattern has {} heads, the inputs need {} ({} heads)",
              pat.num_heads, heads, pat.per_kv_head ? "KV" : "query");
  const KernelInfo ki = kernel_info(q.dtype, s.head_dim, pat.block_k, pat.column_indptr != nullptr);
  SIEVE_CHECK(pat.block_q > 0 && pat.block_q % ki.block_m == 0,
              "CUDA executor needs pattern block_q to be a multiple of {}, got {}", ki.block_m,
              pat.block_q);
  SIEVE_CHECK(pat.block_k > 0 && pat.block_k % ki.block_n == 0,
              "CUDA executor needs pattern block_k to be a multiple of {}, got {}", ki.block_n,
              pat.block_k);
  SIEVE_CHECK(pat.band >= 0, "pattern band must be >= 0, got {}", pat.band);
  SIEVE_CHECK(pat.block_indptr != nullptr, "device pattern has no block_indptr");
  FlashParams& p = r.p;
  p.sparse = true;
  p.block_indptr = pat.block_indptr;
  p.block_indices = pat.block_indices;
  p.column_indptr = pat.column_indptr;
  p.columns = pat.columns;
  p.columns_capacity = pat.column_indptr ? pat.num_columns : 0;
  p.block_q = pat.block_q;
  p.block_k = pat.block_k;
  p.num_q_blocks = int(pat.num_q_blocks());
  p.pattern_head_div = pat.per_kv_head ? int(s.group_size()) : 1;
  p.band = int(std::min<int64_t>(pat.band, s.seq_len_k + 1));  // wider is the same as everything
  launch(r, ki, stream);
}

// ---- DevicePattern ------------------------------------------------------------------------------

namespace {
constexpr int64_t kAlign = 256;
int64_t round_up(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

DevicePattern DevicePattern::allocate(const DevicePatternView& header, int64_t nnz, int64_t num_columns,
                                      Stream stream) {
  SIEVE_CHECK(header.num_heads > 0 && header.block_q > 0 && header.block_k > 0 && header.seq_len_q >= 0,
              "DevicePattern::allocate: bad header");
  DevicePattern d;
  const int64_t rows = header.num_heads * header.num_q_blocks();
  const int64_t b1 = round_up((rows + 1) * 4);
  const int64_t b2 = b1 + round_up(std::max<int64_t>(nnz, 1) * 4);
  const int64_t b3 = b2 + (num_columns >= 0 ? round_up((header.num_heads + 1) * 4) : 0);
  const int64_t total = b3 + (num_columns >= 0 ? round_up(std::max<int64_t>(num_columns, 1) * 4) : 0);
  // Stream-ordered, from the device's default pool: cudaMalloc took ~70 us of host time per
  // selector call on the H200 machine, and cudaFree of a dropped pattern synchronised the device
  // (docs/results/gpu-attention.md, session 11). The free is ordered on the same stream (see the
  // contract in api.h).
  void* mem = nullptr;
  const auto s = static_cast<cudaStream_t>(stream);
  SIEVE_CUDA_CHECK(cudaMallocAsync(&mem, size_t(total), s));
  d.storage_ = std::shared_ptr<void>(mem, [s](void* m) { (void)cudaFreeAsync(m, s); });
  char* base = static_cast<char*>(mem);
  d.view_ = header;
  d.view_.block_indptr = reinterpret_cast<const int32_t*>(base);
  d.view_.block_indices = reinterpret_cast<const int32_t*>(base + b1);
  d.view_.nnz = nnz;
  if (num_columns >= 0) {
    d.view_.column_indptr = reinterpret_cast<const int32_t*>(base + b2);
    d.view_.columns = reinterpret_cast<const int32_t*>(base + b3);
    d.view_.num_columns = num_columns;
  } else {
    d.view_.column_indptr = d.view_.columns = nullptr;
    d.view_.num_columns = 0;
  }
  return d;
}

DevicePattern DevicePattern::upload(const SparsePattern& pat, Stream stream) {
  pat.validate();
  DevicePatternView h;
  h.seq_len_q = pat.seq_len_q;
  h.seq_len_k = pat.seq_len_k;
  h.block_q = pat.block_q;
  h.block_k = pat.block_k;
  h.num_heads = pat.num_heads;
  h.per_kv_head = pat.per_kv_head;
  h.causal = pat.causal;
  h.band = pat.band;
  DevicePattern d = allocate(h, int64_t(pat.block_indices.size()),
                             pat.has_columns() ? int64_t(pat.columns.size()) : -1, stream);
  const DevicePatternView& v = d.view_;
  auto copy = [&](const int32_t* dst, const std::vector<int32_t>& src) {
    if (src.empty()) return;
    SIEVE_CUDA_CHECK(cudaMemcpyAsync(const_cast<int32_t*>(dst), src.data(), src.size() * 4,
                                     cudaMemcpyHostToDevice, stream));
  };
  copy(v.block_indptr, pat.block_indptr);
  copy(v.block_indices, pat.block_indices);
  if (pat.has_columns()) {
    copy(v.column_indptr, pat.column_indptr);
    copy(v.columns, pat.columns);
  }
  return d;
}

SparsePattern DevicePattern::download(Stream stream) const {
  SIEVE_CHECK(!empty(), "DevicePattern::download on an empty pattern");
  const DevicePatternView& v = view_;
  SparsePattern p;
  p.seq_len_q = v.seq_len_q;
  p.seq_len_k = v.seq_len_k;
  p.block_q = v.block_q;
  p.block_k = v.block_k;
  p.num_heads = v.num_heads;
  p.per_kv_head = v.per_kv_head;
  p.causal = v.causal;
  p.band = v.band;
  p.block_indptr.resize(size_t(v.num_heads * v.num_q_blocks() + 1));
  SIEVE_CUDA_CHECK(cudaMemcpyAsync(p.block_indptr.data(), v.block_indptr, p.block_indptr.size() * 4,
                                   cudaMemcpyDeviceToHost, stream));
  if (v.column_indptr) {
    p.column_indptr.resize(size_t(v.num_heads + 1));
    SIEVE_CUDA_CHECK(cudaMemcpyAsync(p.column_indptr.data(), v.column_indptr,
                                     p.column_indptr.size() * 4, cudaMemcpyDeviceToHost, stream));
  }
  SIEVE_CUDA_CHECK(cudaStreamSynchronize(stream));
  const int64_t nnz = p.block_indptr.back();
  SIEVE_CHECK(nnz >= 0 && nnz <= v.nnz, "device pattern holds {} blocks, capacity {}", nnz, v.nnz);
  p.block_indices.resize(size_t(nnz));
  if (nnz > 0)
    SIEVE_CUDA_CHECK(cudaMemcpyAsync(p.block_indices.data(), v.block_indices, size_t(nnz) * 4,
                                     cudaMemcpyDeviceToHost, stream));
  if (v.column_indptr) {
    const int64_t nc = p.column_indptr.back();
    SIEVE_CHECK(nc >= 0 && nc <= v.num_columns, "device pattern holds {} columns, capacity {}", nc,
                v.num_columns);
    p.columns.resize(size_t(nc));
    if (nc > 0)
      SIEVE_CUDA_CHECK(cudaMemcpyAsync(p.columns.data(), v.columns, size_t(nc) * 4,
                                       cudaMemcpyDeviceToHost, stream));
  }
  SIEVE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return p;
}

}  // namespace sieve::attention::cuda
