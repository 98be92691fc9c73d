// Hopper (wgmma, sm_90a) instantiations of the row kernel of row_mass (../row_softmax.cuh):
// sample's row softmax and the vslash / flexprefill probes, scores by wgmma m64n64k16 with the
// listed rows' fragments in registers and the key tile read from shared memory. Each in two
// instances: the lean epilogue (kLean, the default since session 7) and the earlier one
// (SIEVE_ROWS_EPI=default); same results, fewer instructions per tile in the lean one. The
// statistics sweep and the probes also with 64 listed rows a CTA (sample.cu cta_rows).
#include "../row_softmax.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace sieve::attention::cuda::est::rows {

namespace {

template <class T, int D, int kMode, int kRows>
cudaError_t launch(bool lean, const HeadInputs& in, const Geometry& g, const RowProblem& pb,
                   int split_tiles, int splits, const float* row_max, const float* row_inv,
                   float* part_m, double* part_l, cudaStream_t stream) {
  return lean ? launch_row_kernel<T, D, kMode, true, true, kRows>(in, g, pb, split_tiles, splits,
                                                                  row_max, row_inv, part_m, part_l,
                                                                  stream)
              : launch_row_kernel<T, D, kMode, true, false, kRows>(in, g, pb, split_tiles, splits,
                                                                   row_max, row_inv, part_m,
                                                                   part_l, stream);
}

// kSampleMass has only the 128-row instance (row_mass's choice, sample.cu cta_rows).
template <class T, int D>
cudaError_t by_mode(int mode, bool lean, int cta_rows, const HeadInputs& in, const Geometry& g,
                    const RowProblem& pb, int split_tiles, int splits, const float* row_max,
                    const float* row_inv, float* part_m, double* part_l, cudaStream_t stream) {
  const bool r64 = cta_rows == 64;
  if (!r64 && cta_rows != 128) return cudaErrorInvalidValue;
  switch (mode) {
    case kStats:
      return r64 ? launch<T, D, kStats, 64>(lean, in, g, pb, split_tiles, splits, row_max, row_inv,
                                            part_m, part_l, stream)
                 : launch<T, D, kStats, 128>(lean, in, g, pb, split_tiles, splits, row_max,
                                             row_inv, part_m, part_l, stream);
    case kSampleMass:
      if (r64) return cudaErrorInvalidValue;
      return launch<T, D, kSampleMass, 128>(lean, in, g, pb, split_tiles, splits, row_max,
                                            row_inv, part_m, part_l, stream);
    case kProbeMass:
      return r64 ? launch<T, D, kProbeMass, 64>(lean, in, g, pb, split_tiles, splits, row_max,
                                                row_inv, part_m, part_l, stream)
                 : launch<T, D, kProbeMass, 128>(lean, in, g, pb, split_tiles, splits, row_max,
                                                 row_inv, part_m, part_l, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t launch_rows_wgmma(int mode, bool lean, int cta_rows, const HeadInputs& in,
                              const Geometry& g, const RowProblem& pb, int split_tiles, int splits,
                              const float* row_max, const float* row_inv, float* part_m,
                              double* part_l, cudaStream_t stream) {
  if (in.D != 64 && in.D != 128) return cudaErrorInvalidValue;
  const auto run = [&](auto tag, auto d) {
    using T = decltype(tag);
    return by_mode<T, decltype(d)::value>(mode, lean, cta_rows, in, g, pb, split_tiles, splits,
                                          row_max, row_inv, part_m, part_l, stream);
  };
  using D64 = std::integral_constant<int, 64>;
  using D128 = std::integral_constant<int, 128>;
  if (in.bf16) return in.D == 64 ? run(__nv_bfloat16{}, D64{}) : run(__nv_bfloat16{}, D128{});
  return in.D == 64 ? run(__half{}, D64{}) : run(__half{}, D128{});
}

}  // namespace sieve::attention::cuda::est::rows
