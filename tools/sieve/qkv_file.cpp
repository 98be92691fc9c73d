#include "qkv_file.h"

#include <fmt/format.h>

#include "sieve/core/dtype.h"
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

attention::SyntheticConfig planted_suite_config(int64_t heads, int64_t kv_heads, int64_t head_dim,
                                                const std::string& dtype, uint64_t seed,
                                                double strength, int slashes) {
  SIEVE_CHECK(slashes >= 0, "--slashes must be >= 0, got {}", slashes);
  attention::SyntheticConfig c;
  c.num_heads_q = heads;
  c.num_heads_kv = kv_heads;
  c.head_dim = head_dim;
  c.dtype = parse_dtype(dtype);
  c.seed = seed;
  c.strength = float(strength);
  c.num_slashes = slashes;
  return c;
}

}  // namespace sieve::tool
