#include "qkv_file.h"

#include <fmt/format.h>

#include "sieve/core/error.h"

namespace sieve::tool {

TensorView load_qkv(const SafetensorsFile& f, const std::string& name) {
  SIEVE_CHECK(f.contains(name), "{}: no tensor '{}' (expected q [Hq, L, D], k and v [Hkv, L, D])",
              f.path(), name);
  TensorView t = f.view(name);
  if (t.ndim == 4) {  // [1, H, L, D] dumps: drop the batch dimension
    SIEVE_CHECK(t.shape[0] == 1, "{}: tensor '{}' is {}; only batch 1 is supported", f.path(), name,
                t.describe());
    for (int i = 0; i < 3; ++i) {
      t.shape[i] = t.shape[i + 1];
      t.strides[i] = t.strides[i + 1];
    }
    t.shape[3] = 0;
    t.strides[3] = 0;
    t.ndim = 3;
  }
  SIEVE_CHECK(t.ndim == 3, "{}: tensor '{}' is {}, expected 3 dimensions [heads, length, head_dim]",
              f.path(), name, t.describe());
  check_finite(t, fmt::format("{}: tensor '{}'", f.path(), name));
  return t;
}

}  // namespace sieve::tool
