#include "estimation.h"

#include "sieve/attention/selector.h"

#include "sieve/core/error.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>

namespace sieve::attention::estimation {

const Kernels* avx2_kernels();  // estimation_avx2.cpp

// ---- f32 staging -----------------------------------------------------------------------------

void load_rows_f32(const TensorView& t, int64_t head, int64_t r0, int64_t r1, float* dst) {
  const int64_t dim = t.shape[2];
  for (int64_t r = r0; r < r1; ++r) {
    float* out = dst + (r - r0) * dim;
    const void* src = t.ptr(head, r, 0);
    switch (t.dtype) {
      case DType::kF32: std::copy_n(static_cast<const float*>(src), dim, out); break;
      case DType::kBF16: {
        // bf16 -> f32 is a 16-bit shift; this loop vectorizes.
        const auto* s = static_cast<const uint16_t*>(src);
        for (int64_t d = 0; d < dim; ++d) out[d] = f32_from_bits(uint32_t(s[d]) << 16);
        break;
      }
      case DType::kF16: {
        const auto* s = static_cast<const F16*>(src);
        for (int64_t d = 0; d < dim; ++d) out[d] = f16_to_f32(s[d]);
        break;
      }
    }
  }
}

void load_head_f32(const TensorView& t, int64_t head, std::vector<float>& dst) {
  const int64_t len = t.shape[1], dim = t.shape[2];
  dst.resize(static_cast<size_t>(len * dim));
  const int64_t chunk = 256;
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t r0 = 0; r0 < len; r0 += chunk)
    load_rows_f32(t, head, r0, std::min(r0 + chunk, len), &dst[size_t(r0 * dim)]);
}

void mean_rows(const float* src, int64_t rows, int64_t dim, float* dst) {
  std::fill_n(dst, dim, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * dim;
    for (int64_t d = 0; d < dim; ++d) dst[d] += s[d];
  }
  const float inv = rows > 0 ? 1.0f / float(rows) : 0.0f;
  for (int64_t d = 0; d < dim; ++d) dst[d] *= inv;
}

// ---- kernels -----------------------------------------------------------------------------------

namespace {

void gemm_nt_portable(const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                      int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha) {
  for (int64_t i = 0; i < m; ++i) {
    const float* ar = a + i * lda;
    for (int64_t j = 0; j < n; ++j) {
      const float* br = b + j * ldb;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t p = 0; p < k; ++p) s += ar[p] * br[p];
      c[i * ldc + j] = alpha * s;
    }
  }
}

double exp_shift_sum_portable(float* x, int64_t n, float shift) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

const Kernels kPortable{&gemm_nt_portable, &exp_shift_sum_portable, "portable"};

const Kernels& pick_kernels() {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    if (const Kernels* k = avx2_kernels()) return *k;
  }
#endif
  return kPortable;
}

}  // namespace

const Kernels& kernels() {
  static const Kernels& k = pick_kernels();
  return k;
}

void softmax_inplace(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (!std::isfinite(mx)) {  // all -inf: leave zeros rather than NaN
    std::fill_n(x, n, 0.0f);
    return;
  }
  const double sum = kernels().exp_shift_sum(x, n, mx);
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// ---- selection ---------------------------------------------------------------------------------

namespace {
// Descending score, then ascending id: a total order, so prefixes are nested across thresholds.
struct ByScoreDesc {
  const float* s;
  bool operator()(int32_t a, int32_t b) const { return s[a] > s[b] || (s[a] == s[b] && a < b); }
};
}  // namespace

void select_cumulative(const float* scores, int64_t n, double share,
                       const std::vector<int32_t>& forced, std::vector<int32_t>& out) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += scores[i];
  const double required = share * total;
  std::vector<char> is_forced(static_cast<size_t>(n), 0);
  double cum = 0;
  for (int32_t f : forced) {
    if (!is_forced[size_t(f)]) {
      is_forced[size_t(f)] = 1;
      cum += scores[f];
      out.push_back(f);
    }
  }
  if (share >= 1.0) {  // everything visible (also rows whose estimate is all zero)
    for (int64_t i = 0; i < n; ++i)
      if (!is_forced[size_t(i)]) out.push_back(int32_t(i));
    return;
  }
  std::vector<int32_t> order;
  order.reserve(size_t(n));
  for (int64_t i = 0; i < n; ++i)
    if (!is_forced[size_t(i)]) order.push_back(int32_t(i));
  std::sort(order.begin(), order.end(), ByScoreDesc{scores});
  for (int32_t id : order) {
    if (cum >= required) break;
    out.push_back(id);
    cum += scores[id];
  }
}

int64_t cover_count(const float* x, int64_t n, double share) {
  if (n <= 0) return 0;
  std::vector<float> v(x, x + n);
  std::sort(v.begin(), v.end(), std::greater<float>());
  double total = 0;
  for (float f : v) total += f;
  const double required = share * total;
  double cum = 0;
  for (int64_t i = 0; i < n; ++i) {
    cum += v[size_t(i)];
    if (cum >= required) return i + 1;
  }
  return n;
}

std::vector<int32_t> top_k_indices(const float* x, int64_t n, int64_t k) {
  k = std::clamp<int64_t>(k, 0, n);
  std::vector<int32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), ByScoreDesc{x});
  idx.resize(size_t(k));
  return idx;
}

// ---- pattern assembly --------------------------------------------------------------------------

BlockGeometry::BlockGeometry(const AttentionShape& shape, int bq, int bk, bool is_causal)
    : seq_len_q(shape.seq_len_q),
      seq_len_k(shape.seq_len_k),
      q_offset(shape.q_offset()),
      block_q(bq),
      block_k(bk),
      causal(is_causal),
      num_q_blocks((shape.seq_len_q + bq - 1) / bq),
      num_k_blocks((shape.seq_len_k + bk - 1) / bk) {}

int64_t BlockGeometry::q_end(int64_t qb) const {
  return std::min<int64_t>((qb + 1) * block_q, seq_len_q);
}

int64_t BlockGeometry::visible_keys(int64_t qb) const {
  if (!causal) return seq_len_k;
  return std::clamp<int64_t>(pos(q_end(qb) - 1) + 1, 0, seq_len_k);
}

int64_t BlockGeometry::visible_k_blocks(int64_t qb) const {
  return (visible_keys(qb) + block_k - 1) / block_k;
}

std::vector<int32_t> BlockGeometry::forced_blocks(int64_t qb) const {
  std::vector<int32_t> f;
  const int64_t nvis = visible_k_blocks(qb);
  if (nvis == 0) return f;
  f.push_back(0);
  const int64_t first = std::clamp<int64_t>(pos(q_begin(qb)), 0, seq_len_k - 1) / block_k;
  const int64_t last = std::clamp<int64_t>(pos(q_end(qb) - 1), 0, seq_len_k - 1) / block_k;
  for (int64_t kb = std::max<int64_t>(first, 1); kb <= std::min(last, nvis - 1); ++kb)
    f.push_back(int32_t(kb));
  return f;
}

PatternBuilder::PatternBuilder(const BlockGeometry& geo, int num_heads)
    : geo_(geo),
      num_heads_(num_heads),
      rows_(size_t(num_heads) * size_t(geo.num_q_blocks)),
      columns_(size_t(num_heads)) {}

void PatternBuilder::set_row(int head, int64_t qb, std::vector<int32_t> blocks) {
  const int64_t nvis = geo_.visible_k_blocks(qb);
  for (int32_t f : geo_.forced_blocks(qb)) blocks.push_back(f);
  std::erase_if(blocks, [&](int32_t b) { return b < 0 || b >= nvis; });
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  rows_[size_t(head) * size_t(geo_.num_q_blocks) + size_t(qb)] = std::move(blocks);
}

void PatternBuilder::set_columns(int head, std::vector<int32_t> columns) {
  has_columns_ = true;
  std::erase_if(columns, [&](int32_t c) { return c < geo_.block_k || c >= geo_.seq_len_k; });
  std::sort(columns.begin(), columns.end());
  columns.erase(std::unique(columns.begin(), columns.end()), columns.end());
  columns_[size_t(head)] = std::move(columns);
}

SparsePattern PatternBuilder::finish() {
  SparsePattern p;
  p.seq_len_q = geo_.seq_len_q;
  p.seq_len_k = geo_.seq_len_k;
  p.block_q = geo_.block_q;
  p.block_k = geo_.block_k;
  p.num_heads = num_heads_;
  p.per_kv_head = false;
  p.causal = geo_.causal;
  p.block_indptr.assign(rows_.size() + 1, 0);
  size_t nnz = 0;
  for (size_t r = 0; r < rows_.size(); ++r) {
    nnz += rows_[r].size();
    p.block_indptr[r + 1] = int32_t(nnz);
  }
  p.block_indices.reserve(nnz);
  for (auto& row : rows_) p.block_indices.insert(p.block_indices.end(), row.begin(), row.end());
  if (has_columns_) {
    p.column_indptr.assign(size_t(num_heads_) + 1, 0);
    for (size_t h = 0; h < columns_.size(); ++h)
      p.column_indptr[h + 1] = p.column_indptr[h] + int32_t(columns_[h].size());
    for (auto& c : columns_) p.columns.insert(p.columns.end(), c.begin(), c.end());
  }
  p.band = band_;
  p.validate();
  return p;
}

// ---- last-rows probe ----------------------------------------------------------------------------

Probe probe_last_rows(const TensorView& q, int64_t head, const float* kf32,
                      const BlockGeometry& geo, int64_t dim, float scale, int64_t rows) {
  const int64_t lq = geo.seq_len_q, lk = geo.seq_len_k;
  Probe pr;
  pr.rows = std::clamp<int64_t>(rows, 0, lq);
  pr.vertical.assign(size_t(lk), 0.0);
  pr.slash.assign(size_t(lk), 0.0);
  const int64_t m = pr.rows, i0 = lq - m;
  if (m == 0) return pr;
  std::vector<float> qs(static_cast<size_t>(m * dim));
  load_rows_f32(q, head, i0, lq, qs.data());
  std::vector<float> p(static_cast<size_t>(m * lk));
  const int nt = num_threads();
  const Kernels& kern = kernels();
  const int64_t chunk = 512;
  // Scores in key chunks (threads share the probed rows), then one softmax per row.
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t j0 = 0; j0 < lk; j0 += chunk) {
    kern.gemm_nt(qs.data(), dim, kf32 + j0 * dim, dim, &p[size_t(j0)], lk, m,
                 std::min(chunk, lk - j0), dim, scale);
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < m; ++r) {
    float* row = &p[size_t(r * lk)];
    const int64_t v = geo.causal ? std::clamp<int64_t>(geo.pos(i0 + r) + 1, 0, lk) : lk;
    softmax_inplace(row, v);
    std::fill(row + v, row + lk, 0.0f);
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t j0 = 0; j0 < lk; j0 += chunk) {
    const int64_t j1 = std::min(lk, j0 + chunk);
    for (int64_t r = 0; r < m; ++r) {
      const float* row = &p[size_t(r * lk)];
      for (int64_t j = j0; j < j1; ++j) pr.vertical[size_t(j)] += row[j];
    }
    // Diagonal offsets o in [j0, j1): key j = pos(i) - o.
    for (int64_t r = 0; r < m; ++r) {
      const float* row = &p[size_t(r * lk)];
      const int64_t pos = geo.pos(i0 + r);
      for (int64_t o = j0; o < j1; ++o) {
        const int64_t j = pos - o;
        if (j < 0) break;
        if (j < lk) pr.slash[size_t(o)] += row[j];
      }
    }
  }
  return pr;
}

// ---- settings parsing --------------------------------------------------------------------------

double parse_double(std::string_view selector, std::string_view key, std::string_view value) {
  double v = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, v);
  SIEVE_CHECK(ec == std::errc() && ptr == end && std::isfinite(v),
              "selector '{}': setting '{}' needs a number, got '{}'", selector, key, value);
  return v;
}

std::vector<int64_t> parse_int_list(std::string_view selector, std::string_view key,
                                    std::string_view value) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (true) {
    const size_t comma = value.find(',', start);
    const std::string_view item =
        value.substr(start, comma == std::string_view::npos ? value.npos : comma - start);
    SIEVE_CHECK(!item.empty(), "selector '{}': setting '{}' needs a comma-separated list of "
                "integers, got '{}'", selector, key, value);
    out.push_back(parse_setting_int(selector, key, item));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string format_double(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, ptr);
}

std::string format_int_list(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

void check_open_closed(std::string_view selector, std::string_view key, double v, double lo,
                       double hi) {
  SIEVE_CHECK(v > lo && v <= hi, "selector '{}': {} must be in ({}, {}], got {}", selector, key,
              lo, hi, v);
}

}  // namespace sieve::attention::estimation
