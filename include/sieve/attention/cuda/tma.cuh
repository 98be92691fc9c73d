// Hopper (sm_90) asynchronous-copy and synchronisation wrappers for warp-specialised kernels:
// mbarriers (init, arrive, arrive with an expected transaction count, parity wait), bulk tensor
// copies (TMA, `cp.async.bulk.tensor`: loads completing on an mbarrier, stores completing in bulk
// groups), named barriers over a thread count (barrier.sync, barrier.red.and) and `setmaxnreg`
// (sm_90a).
// Device-only header; the tensor maps are encoded on the host (cuTensorMapEncodeTiled) and passed
// as __grid_constant__ parameters.
// Reference: PTX ISA, "Parallel Synchronization and Communication Instructions: mbarrier",
// "cp.async.bulk.tensor", "bar, barrier", "setmaxnreg".
#pragma once

#include <cstdint>

namespace sieve::attention::cuda::tma {

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/// Makes initialised mbarriers visible to the other threads and to the async proxy (TMA); the
/// CTA barrier that follows publishes them.
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/// Arrives and adds `bytes` to the phase's expected transaction count (the TMA copies that
/// complete on this barrier count them down).
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
/// Blocks until the phase of parity `parity` has completed (a fresh barrier counts the phase
/// before its first as completed: waiting on parity 1 returns at once). Acquire semantics.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}

/// 3-D tiled bulk tensor copy global -> shared (coordinates innermost first), completing
/// `box bytes` of transactions on `bar`. Out-of-bounds elements are zero-filled.
__device__ __forceinline__ void load_3d(uint32_t dst, const void* tmap, uint32_t bar, int c0,
                                        int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
      "l"(tmap), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
/// load_3d with a fourth coordinate (c3 outermost).
__device__ __forceinline__ void load_4d(uint32_t dst, const void* tmap, uint32_t bar, int c0,
                                        int c1, int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(dst),
      "l"(tmap), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void prefetch_map(const void* tmap) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(tmap) : "memory");
}
/// 3-D tiled bulk tensor copy shared -> global of the box at (c0, c1, c2) (bulk async-group
/// completion; out-of-bounds elements are not written). The writing threads order their shared
/// stores before it with fence.proxy.async and a barrier.
__device__ __forceinline__ void store_3d(const void* tmap, uint32_t src, int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.global.shared::cta.tile.bulk_group [%0, {%1, %2, %3}], [%4];\n" ::"l"(
          tmap),
      "r"(c0), "r"(c1), "r"(c2), "r"(src)
      : "memory");
}
__device__ __forceinline__ void bulk_commit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
/// Waits until every committed bulk store has finished reading its shared-memory source (the
/// buffer may be reused or the CTA may exit; the global writes may still be in flight).
__device__ __forceinline__ void bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}

/// Named barrier ID (1..15; 0 is __syncthreads) over COUNT threads (a multiple of 32): bar_sync
/// waits for all of them; bar_and also returns whether `pred` holds in all of them. Non-.aligned
/// forms (the callers' warps arrive from divergent code), but callers still reconverge each warp
/// with __syncwarp() first so that whole warps arrive together.
template <int ID, int COUNT>
__device__ __forceinline__ void bar_sync() {
  static_assert(ID > 0 && ID < 16 && COUNT % 32 == 0, "named barrier");
  asm volatile("barrier.sync %0, %1;\n" ::"n"(ID), "n"(COUNT) : "memory");
}
/// bar_sync with the barrier ID in a register (uniform across the COUNT threads).
template <int COUNT>
__device__ __forceinline__ void bar_sync_id(int id) {
  static_assert(COUNT % 32 == 0, "named barrier");
  asm volatile("barrier.sync %0, %1;\n" ::"r"(id), "n"(COUNT) : "memory");
}
template <int ID, int COUNT>
__device__ __forceinline__ bool bar_and(bool pred) {
  static_assert(ID > 0 && ID < 16 && COUNT % 32 == 0, "named barrier");
  uint32_t r;
  asm volatile(
      "{\n.reg .pred p, q;\nsetp.ne.u32 p, %1, 0;\nbarrier.red.and.pred q, %2, %3, p;\n"
      "selp.u32 %0, 1, 0, q;\n}\n"
      : "=r"(r)
      : "r"(uint32_t(pred)), "n"(ID), "n"(COUNT)
      : "memory");
  return r != 0;
}

/// Per-thread register budget of the executing warpgroup (sm_90a; the kernel needs a register
/// cap at entry, i.e. __launch_bounds__ with a minimum of one block).
template <int N>
__device__ __forceinline__ void regs_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void regs_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

}  // namespace sieve::attention::cuda::tma
