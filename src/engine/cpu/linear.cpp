// Dispatch of linear() to the SIMD path chosen at run time, the scalar path, and the bias.
#include "sieve/engine/linear.h"

#include "linear_kernels.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"

#include <atomic>

namespace sieve::engine {

namespace {

std::atomic<int> g_forced{int(LinearIsa::kAuto)};

LinearIsa detect() {
  if (linear_isa_supported(LinearIsa::kAvx512)) return LinearIsa::kAvx512;
  if (linear_isa_supported(LinearIsa::kAvx2)) return LinearIsa::kAvx2;
  return LinearIsa::kScalar;
}

LinearIsa active() {
  static const LinearIsa best = detect();
  const auto f = LinearIsa(g_forced.load(std::memory_order_relaxed));
  return f == LinearIsa::kAuto ? best : f;
}

}  // namespace

bool linear_isa_supported(LinearIsa isa) {
  switch (isa) {
    case LinearIsa::kAuto:
    case LinearIsa::kScalar:
      return true;
    case LinearIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case LinearIsa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("fma");
  }
  return false;
}

void set_linear_isa(LinearIsa isa) {
  SIEVE_CHECK(linear_isa_supported(isa), "this processor does not support the requested SIMD path");
  g_forced.store(int(isa), std::memory_order_relaxed);
}

const char* linear_isa_name() {
  switch (active()) {
    case LinearIsa::kAvx512: return "avx512bf16";
    case LinearIsa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

void linear(const float* x, int64_t num_tokens, const Matrix& w, float* y, const float* maybe_bias) {
  SIEVE_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16,
              "linear: weights must be f32 or bf16, got {}", dtype_name(w.dtype));
  SIEVE_CHECK(w.rows > 0 && w.cols > 0 && num_tokens >= 0 && w.data && x && y,
              "linear: empty or null operands ([{}, {}] weights, {} tokens)", w.rows, w.cols,
              num_tokens);
  if (num_tokens == 0) return;
  switch (active()) {
    case LinearIsa::kAvx512: detail::linear_avx512(x, num_tokens, w, y); break;
    case LinearIsa::kAvx2: detail::linear_avx2(x, num_tokens, w, y); break;
    default: detail::linear_scalar(x, num_tokens, w, y); break;
  }
  if (maybe_bias) {
    const int64_t n = w.rows;
    for (int64_t t = 0; t < num_tokens; ++t) {
      float* row = y + t * n;
      for (int64_t j = 0; j < n; ++j) row[j] += maybe_bias[j];
    }
  }
}

namespace detail {

int team_size(int64_t work) { return work < (int64_t(1) << 15) ? 1 : num_threads(); }

void linear_scalar(const float* x, int64_t num_tokens, const Matrix& w, float* y) {
  const int64_t n = w.rows, k = w.cols;
#pragma omp parallel for schedule(static) num_threads(team_size(n * k * num_tokens))
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t t = 0; t < num_tokens; ++t) {
      const float* xr = x + t * k;
      float acc = 0.0f;
      if (w.dtype == DType::kF32) {
        const float* wr = static_cast<const float*>(w.data) + j * k;
        for (int64_t i = 0; i < k; ++i) acc += xr[i] * wr[i];
      } else {
        const BF16* wr = static_cast<const BF16*>(w.data) + j * k;
        for (int64_t i = 0; i < k; ++i) acc += xr[i] * bf16_to_f32(wr[i]);
      }
      y[t * n + j] = acc;
    }
  }
}

}  // namespace detail

}  // namespace sieve::engine
