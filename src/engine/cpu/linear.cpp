// Dispatch of linear() to the SIMD path chosen at run time, the scalar path, and the bias.
#include "sieve/engine/linear.h"

#include "linear_kernels.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>

namespace sieve::engine {

namespace {

std::atomic<int> g_forced{int(LinearIsa::kAuto)};

LinearIsa detect() {
  // SIEVE_LINEAR_ISA=scalar|avx2|avx512 picks a path for benchmarks (ignored when unsupported).
  if (const char* env = std::getenv("SIEVE_LINEAR_ISA")) {
    const std::string_view v(env);
    const LinearIsa want = v == "scalar" ? LinearIsa::kScalar
                           : v == "avx2" ? LinearIsa::kAvx2
                           : v == "avx512" ? LinearIsa::kAvx512
                                           : LinearIsa::kAuto;
    if (want != LinearIsa::kAuto && linear_isa_supported(want)) return want;
  }
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

namespace {

using GemvRows = void (*)(const float*, int64_t, const Matrix&, int64_t, int64_t, float*);

GemvRows gemv_rows_for(LinearIsa isa) {
  switch (isa) {
    case LinearIsa::kAvx512: return detail::gemv_rows_avx512;
    case LinearIsa::kAvx2: return detail::gemv_rows_avx2;
    default: return detail::gemv_rows_scalar;
  }
}

void check_operands(const float* x, int64_t num_tokens, const Matrix& w, const float* y) {
  SIEVE_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16,
              "linear: weights must be f32 or bf16, got {}", dtype_name(w.dtype));
  SIEVE_CHECK(w.rows > 0 && w.cols > 0 && num_tokens >= 0 && w.data && x && y,
              "linear: empty or null operands ([{}, {}] weights, {} tokens)", w.rows, w.cols,
              num_tokens);
}

void add_bias(int64_t num_tokens, int64_t n, const float* bias, float* y) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t j = 0; j < n; ++j) y[t * n + j] += bias[j];
  }
}

constexpr int64_t kRowBlock = 64;  // rows per work item of the shared GEMV loop

}  // namespace

void linear_many(const float* x, int64_t num_tokens, std::span<const LinearTarget> targets) {
  int64_t work = 0, items = 0;
  for (const LinearTarget& t : targets) {
    check_operands(x, num_tokens, t.w, t.y);
    work += t.w.rows * t.w.cols * num_tokens;
    items += (t.w.rows + kRowBlock - 1) / kRowBlock;
  }
  if (num_tokens == 0) return;
  const LinearIsa isa = active();
  if (num_tokens >= detail::kGemmMinTokens) {
    for (const LinearTarget& t : targets) {
      switch (isa) {
        case LinearIsa::kAvx512: detail::gemm_avx512(x, num_tokens, t.w, t.y); break;
        case LinearIsa::kAvx2: detail::gemm_avx2(x, num_tokens, t.w, t.y); break;
        default: break;
      }
    }
  }
  if (num_tokens < detail::kGemmMinTokens || isa == LinearIsa::kScalar) {
    // Work items are blocks of kRowBlock rows of any target, numbered target after target.
    // Handed out dynamically: on a shared machine one thread of the team is often descheduled,
    // and a static split would make the others wait for its whole share at the barrier.
    const GemvRows rows = gemv_rows_for(isa);
#pragma omp parallel for schedule(dynamic, 1) num_threads(detail::team_size(work))
    for (int64_t item = 0; item < items; ++item) {
      int64_t i = item;
      for (const LinearTarget& t : targets) {
        const int64_t blocks = (t.w.rows + kRowBlock - 1) / kRowBlock;
        if (i < blocks) {
          rows(x, num_tokens, t.w, i * kRowBlock, std::min(t.w.rows, (i + 1) * kRowBlock), t.y);
          break;
        }
        i -= blocks;
      }
    }
  }
  for (const LinearTarget& t : targets) {
    if (t.maybe_bias) add_bias(num_tokens, t.w.rows, t.maybe_bias, t.y);
  }
}

void linear(const float* x, int64_t num_tokens, const Matrix& w, float* y, const float* maybe_bias) {
  const LinearTarget t{w, y, maybe_bias};
  linear_many(x, num_tokens, {&t, 1});
}

namespace detail {

int team_size(int64_t work) { return work < (int64_t(1) << 15) ? 1 : num_threads(); }

void gemv_rows_scalar(const float* x, int64_t num_tokens, const Matrix& w, int64_t row0,
                      int64_t row1, float* y) {
  const int64_t n = w.rows, k = w.cols;
  for (int64_t j = row0; j < row1; ++j) {
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
