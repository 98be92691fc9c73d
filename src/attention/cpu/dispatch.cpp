// Run-time choice of the SIMD kernel variant (never -march=native): the widest ISA the CPU
// reports through cpuid, or the one forced by set_cpu_kernel_isa.
#include <atomic>
#include <string>

#include "kernel.h"
#include "sieve/attention/executor.h"
#include "sieve/core/error.h"

namespace sieve::attention {
namespace cpu {
namespace {

enum class Isa : int { kAuto, kScalar, kAvx2, kAvx512, kAvx2Wide };

std::atomic<int> g_forced{int(Isa::kAuto)};

bool has_avx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c") && avx2_ops() != nullptr;
#else
  return false;
#endif
}

bool has_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && has_avx2() &&
         avx512_ops(false) != nullptr;
#else
  return false;
#endif
}

bool has_avx512_bf16() {
#if defined(__x86_64__)
  return has_avx512() && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

Isa current_isa() {
  const Isa forced = Isa(g_forced.load(std::memory_order_relaxed));
  if (forced != Isa::kAuto) return forced;
  static const Isa best = has_avx512() ? Isa::kAvx512 : has_avx2() ? Isa::kAvx2 : Isa::kScalar;
  return best;
}

}  // namespace

const KernelOps& select_ops(DType dtype, int64_t head_dim) {
  const Isa isa = current_isa();
  if (isa == Isa::kAvx512 && head_dim % 16 == 0)
    return *avx512_ops(dtype == DType::kBF16 && has_avx512_bf16());
  if (isa == Isa::kAvx2Wide && head_dim % 16 == 0) return *avx2_wide_ops(dtype == DType::kBF16);
  if (isa != Isa::kScalar && head_dim % 8 == 0) return *avx2_ops();
  return *scalar_ops();
}

}  // namespace cpu

const char* cpu_kernel_isa() {
  switch (cpu::current_isa()) {
    case cpu::Isa::kAvx512: return "avx512";
    case cpu::Isa::kAvx2: return "avx2";
    case cpu::Isa::kAvx2Wide: return "avx2-wide";
    default: return "scalar";
  }
}

void set_cpu_kernel_isa(std::string_view isa) {
  using cpu::Isa;
  Isa want;
  if (isa.empty() || isa == "auto") {
    want = Isa::kAuto;
  } else if (isa == "scalar") {
    want = Isa::kScalar;
  } else if (isa == "avx2") {
    SIEVE_CHECK(cpu::has_avx2(), "set_cpu_kernel_isa: this CPU lacks AVX2/FMA/F16C");
    want = Isa::kAvx2;
  } else if (isa == "avx2-wide") {
    SIEVE_CHECK(cpu::has_avx2(), "set_cpu_kernel_isa: this CPU lacks AVX2/FMA/F16C");
    want = Isa::kAvx2Wide;
  } else if (isa == "avx512") {
    SIEVE_CHECK(cpu::has_avx512(), "set_cpu_kernel_isa: this CPU lacks AVX-512 F/BW/VL/DQ");
    want = Isa::kAvx512;
  } else {
    SIEVE_FAIL("set_cpu_kernel_isa: unknown ISA '{}' (use auto, avx512, avx2, avx2-wide, scalar)",
               std::string(isa));
  }
  cpu::g_forced.store(int(want), std::memory_order_relaxed);
}

}  // namespace sieve::attention
