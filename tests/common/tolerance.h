// Named tolerances for comparing kernels with the f64 reference, and the one comparison that
// applies them. docs/numerics.md explains where each number comes from.
//
// An element passes when |got - want| <= elem_rel * |want| + max_rel * max|want|, the max taken over
// the whole compared tensor (attention outputs are convex combinations of V rows, so an error
// measured against the largest output is the meaningful "relative" error; individual outputs can
// be arbitrarily close to zero).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace sieve::test {

/// f32 accumulation (any input dtype, inputs converted exactly to f32), f32 output: error of the
/// tiled online softmax over <= 1024 keys against exact f64 math, relative to max|reference|.
inline constexpr double kAttnF32MaxRel = 1e-5;
/// Output rounded to bf16 (7 stored significand bits): round-to-nearest errs by at most half an ulp,
/// i.e. 2^-8 relative; kAttnF32MaxRel covers the f32 value being rounded.
inline constexpr double kAttnBf16OutElemRel = 0x1p-8;
/// Output rounded to f16 (10 stored significand bits): at most 2^-11 relative; f16 subnormals
/// (absolute spacing 6e-8) fall under the max_rel term.
inline constexpr double kAttnF16OutElemRel = 0x1p-11;
/// Large logits: f32 scores carry a rounding error proportional to their size, and softmax passes
/// it on. Extra max_rel allowed per unit of max |scale * q.k|: 8 f32 ulps (8 * 2^-24).
inline constexpr double kAttnPerLogitRel = 8 * 0x1p-24;
/// Natural-log log-sum-exp: |got - want| <= kAttnLseTol * (1 + |want|).
inline constexpr double kAttnLseTol = 1e-5;

struct Tolerance {
  double elem_rel = 0;
  double max_rel = kAttnF32MaxRel;
};

/// Result of a comparison: the worst element (index, values) and whether every element passed.
struct Comparison {
  bool ok = true;
  int64_t worst = -1;
  double worst_excess = 0, got = 0, want = 0, max_abs_want = 0;
  std::string message() const {
    return "worst element " + std::to_string(worst) + ": got " + std::to_string(got) + " want " +
           std::to_string(want) + " (max |want| " + std::to_string(max_abs_want) + ")";
  }
};

/// Compares got[i] with want[i]; NaN anywhere in `got` fails.
inline Comparison compare(const std::vector<double>& got, const std::vector<double>& want,
                          Tolerance tol) {
  Comparison c;
  for (double w : want) c.max_abs_want = std::max(c.max_abs_want, std::fabs(w));
  if (got.size() != want.size()) {
    c.ok = false;
    return c;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = tol.elem_rel * std::fabs(want[i]) + tol.max_rel * c.max_abs_want;
    const double err = std::fabs(got[i] - want[i]);
    const double excess = std::isnan(got[i]) ? INFINITY : err / (bound > 0 ? bound : 1e-300);
    if (excess > 1.0 && (c.ok || excess > c.worst_excess)) {
      c.ok = false;
      c.worst = int64_t(i);
      c.worst_excess = excess;
      c.got = got[i];
      c.want = want[i];
    }
  }
  return c;
}

}  // namespace sieve::test
