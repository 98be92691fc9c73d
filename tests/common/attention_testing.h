// Helpers for attention executor tests: random Q/K/V in any dtype (optionally strided views whose
// padding holds NaN, so a read outside the view poisons the result), tensor -> f64 vectors, and an
// RAII guard for the forced CPU kernel ISA.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "sieve/attention/executor.h"
#include "sieve/core/rng.h"
#include "sieve/core/tensor.h"

namespace sieve::test {

struct Qkv {
  Tensor q_store, k_store, v_store;
  TensorView q, k, v;
};

/// [heads, len, dim] view of random normal values times `scale`, rounded to `dt`. When `strided`
/// the view lives inside a larger NaN-filled buffer (row stride dim + 5, head stride (len + 3) rows).
inline TensorView random_view(Tensor& store, int64_t heads, int64_t len, int64_t dim, DType dt,
                              Rng& rng, bool strided, float scale = 1.0f) {
  const int64_t pad_d = strided ? 5 : 0, pad_l = strided ? 3 : 0;
  store = Tensor(dt, {heads, len + pad_l, dim + pad_d});
  TensorView all = store.view();
  for (int64_t i = 0; i < store.numel(); ++i)
    store_from_f32(all.data, dt, i, std::numeric_limits<float>::quiet_NaN());
  TensorView v = all;
  v.shape = {heads, len, dim, 0};
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < len; ++i)
      for (int64_t d = 0; d < dim; ++d) v.set(float(rng.normal()) * scale, h, i, d);
  return v;
}

inline Qkv random_qkv(int64_t hq, int64_t hkv, int64_t lq, int64_t lk, int64_t dim, DType dt,
                      uint64_t seed, bool strided = false, float q_scale = 1.0f) {
  Rng rng(seed);
  Qkv r;
  r.q = random_view(r.q_store, hq, lq, dim, dt, rng, strided, q_scale);
  r.k = random_view(r.k_store, hkv, lk, dim, dt, rng, strided);
  r.v = random_view(r.v_store, hkv, lk, dim, dt, rng, strided);
  return r;
}

/// Elements of a 2-D or 3-D view in row-major index order, as f64.
inline std::vector<double> to_vector(const TensorView& t) {
  std::vector<double> out;
  out.reserve(size_t(t.numel()));
  if (t.ndim == 2) {
    for (int64_t a = 0; a < t.shape[0]; ++a)
      for (int64_t b = 0; b < t.shape[1]; ++b) out.push_back(t.get(a, b));
  } else {
    for (int64_t a = 0; a < t.shape[0]; ++a)
      for (int64_t b = 0; b < t.shape[1]; ++b)
        for (int64_t c = 0; c < t.shape[2]; ++c) out.push_back(t.get(a, b, c));
  }
  return out;
}

/// The CPU kernel paths this machine can run (each forced in turn by tests).
inline std::vector<std::string> available_isas() {
  std::vector<std::string> isas = {"scalar"};
  for (const char* name : {"avx2", "avx2-wide", "avx512"}) {
    try {
      attention::set_cpu_kernel_isa(name);
      isas.push_back(name);
    } catch (const Error&) {
    }
  }
  attention::set_cpu_kernel_isa("auto");
  return isas;
}

/// Forces an ISA for the scope; restores automatic choice on exit.
struct IsaGuard {
  explicit IsaGuard(const std::string& isa) { attention::set_cpu_kernel_isa(isa); }
  ~IsaGuard() { attention::set_cpu_kernel_isa("auto"); }
  IsaGuard(const IsaGuard&) = delete;
  IsaGuard& operator=(const IsaGuard&) = delete;
};

}  // namespace sieve::test
