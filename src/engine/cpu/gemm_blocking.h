// Internal: the cache blocking shared by the packed GEMMs of linear_avx2.cpp and
// linear_avx512.cpp. Work items are (block of kMc tokens) x (panel of kNr output features), split
// over OpenMP threads; each item walks the depth in chunks of kKc, packs the panel chunk once
// (Kernel::pack) and sweeps it over the tokens in tiles of kMr (Kernel::tile<MR>).
//
// Kernels are types with internal linkage (anonymous namespace) in each ISA file, so every
// instantiation below is private to the translation unit compiled with that ISA's flags.
#pragma once

#include <algorithm>
#include <cstdint>

namespace sieve::engine::detail {

template <class Kernel>
void gemm_blocked(Kernel& kern, int64_t num_tokens, int64_t n, int64_t k, int team) {
  constexpr int kNr = Kernel::kNr, kMr = Kernel::kMr, kKc = Kernel::kKc, kMc = Kernel::kMc;
  const int64_t panels = (n + kNr - 1) / kNr;
  const int64_t blocks = (num_tokens + kMc - 1) / kMc;
#pragma omp parallel num_threads(team)
  {
    alignas(64) typename Kernel::Packed bp[Kernel::kPackSize];
#pragma omp for collapse(2) schedule(dynamic, 1)  // robust to a descheduled thread
    for (int64_t tb = 0; tb < blocks; ++tb) {
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t n0 = p * kNr;
        const int nr = int(std::min<int64_t>(kNr, n - n0));
        const int64_t t0 = tb * kMc, t1 = std::min(num_tokens, t0 + kMc);
        for (int64_t k0 = 0; k0 < k; k0 += kKc) {
          const int kc = int(std::min<int64_t>(kKc, k - k0));
          kern.pack(bp, n0, nr, k0, kc);
          const bool add = k0 > 0;  // later depth chunks accumulate into y
          int64_t t = t0;
          for (; t + kMr <= t1; t += kMr) kern.template tile<kMr>(bp, t, n0, nr, k0, kc, add);
          switch (t1 - t) {
            case 5: kern.template tile<5>(bp, t, n0, nr, k0, kc, add); break;
            case 4: kern.template tile<4>(bp, t, n0, nr, k0, kc, add); break;
            case 3: kern.template tile<3>(bp, t, n0, nr, k0, kc, add); break;
            case 2: kern.template tile<2>(bp, t, n0, nr, k0, kc, add); break;
            case 1: kern.template tile<1>(bp, t, n0, nr, k0, kc, add); break;
            default: break;
          }
        }
      }
    }
  }
}

}  // namespace sieve::engine::detail
