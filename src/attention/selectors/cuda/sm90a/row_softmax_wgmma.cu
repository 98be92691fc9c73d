// Hopper (wgmma, sm_90a) instantiations of the row kernel of row_mass (../row_softmax.cuh):
// sample's row softmax and the vslash / flexprefill probes, scores by wgmma m64n64k16 with the
// listed rows' fragments in registers and the key tile read from shared memory. Each in two
// instances: the lean epilogue (kLean, the default since session 7) and the earlier one
// (SIEVE_ROWS_EPI=default); same results, fewer instructions per tile in the lean one.
#include "../row_softmax.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace sieve::attention::cuda::est::rows {

namespace {

template <class T, int D, int kMode>
cudaError_t launch(bool lean, const HeadInputs& in, const Geometry& g, const RowProblem& pb,
                   int split_tiles, int splits, const float* row_max, const float* row_inv,
                   float* part_m, double* part_l, cudaStream_t stream) {
  return lean ? launch_row_kernel<T, D, kMode, true, true>(in, g, pb, split_tiles, splits, row_max,
                                                           row_inv, part_m, part_l, stream)
              : launch_row_kernel<T, D, kMode, true>(in, g, pb, split_tiles, splits, row_max,
                                                     row_inv, part_m, part_l, stream);
}

template <class T, int D>
cudaError_t by_mode(int mode, bool lean, const HeadInputs& in, const Geometry& g,
                    const RowProblem& pb, int split_tiles, int splits, const float* row_max,
                    const float* row_inv, float* part_m, double* part_l, cudaStream_t stream) {
  switch (mode) {
    case kStats:
      return launch<T, D, kStats>(lean, in, g, pb, split_tiles, splits, row_max, row_inv, part_m,
                                  part_l, stream);
    case kSampleMass:
      return launch<T, D, kSampleMass>(lean, in, g, pb, split_tiles, splits, row_max, row_inv,
                                       part_m, part_l, stream);
    case kProbeMass:
      return launch<T, D, kProbeMass>(lean, in, g, pb, split_tiles, splits, row_max, row_inv,
                                      part_m, part_l, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t launch_rows_wgmma(int mode, bool lean, const HeadInputs& in, const Geometry& g,
                              const RowProblem& pb, int split_tiles, int splits,
                              const float* row_max, const float* row_inv, float* part_m,
                              double* part_l, cudaStream_t stream) {
  if (in.D != 64 && in.D != 128) return cudaErrorInvalidValue;
  if (in.bf16)
    return in.D == 64 ? by_mode<__nv_bfloat16, 64>(mode, lean, in, g, pb, split_tiles, splits,
                                                   row_max, row_inv, part_m, part_l, stream)
                      : by_mode<__nv_bfloat16, 128>(mode, lean, in, g, pb, split_tiles, splits,
                                                    row_max, row_inv, part_m, part_l, stream);
  return in.D == 64 ? by_mode<__half, 64>(mode, lean, in, g, pb, split_tiles, splits, row_max,
                                          row_inv, part_m, part_l, stream)
                    : by_mode<__half, 128>(mode, lean, in, g, pb, split_tiles, splits, row_max,
                                           row_inv, part_m, part_l, stream);
}

}  // namespace sieve::attention::cuda::est::rows
