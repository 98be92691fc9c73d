#include "sieve/core/dtype.h"

#include "sieve/core/error.h"

namespace sieve {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
  }
  return "?";
}

DType parse_dtype(std::string_view name) {
  if (name == "f32" || name == "float32" || name == "F32") return DType::kF32;
  if (name == "bf16" || name == "bfloat16" || name == "BF16") return DType::kBF16;
  if (name == "f16" || name == "float16" || name == "F16" || name == "half") return DType::kF16;
  SIEVE_FAIL("unknown dtype '{}' (expected f32, bf16 or f16)", name);
}

}  // namespace sieve
