// Internal: how much freed memory the device's stream-ordered pool keeps, shared by the GPU
// selectors' scratch (device_selectors_internal.h) and the fa3 executor's staged token columns
// (sm90a/flash_fa3.cu).
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

namespace sieve::attention::cuda {

/// Raises the default pool's release threshold of the current device to at least `bytes` (the
/// default threshold 0 returns freed memory to the system at every synchronisation), so repeated
/// calls reuse their stream-ordered allocations instead of mapping them again. Never lowers it.
/// The first caller per device and size pays a few runtime calls; later ones ~1 atomic load.
inline void keep_pool_memory(uint64_t bytes = uint64_t(4) << 30) {
  static std::atomic<uint64_t> kept[64];  // the threshold this process has set, per device
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return;
  if (dev < 64 && kept[dev].load(std::memory_order_relaxed) >= bytes) return;
  cudaMemPool_t pool = nullptr;
  if (cudaDeviceGetDefaultMemPool(&pool, dev) != cudaSuccess) return;
  uint64_t thr = 0;
  if (cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &thr) != cudaSuccess) return;
  if (thr < bytes) {
    thr = bytes;
    if (cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &thr) != cudaSuccess) return;
  }
  if (dev < 64) {
    uint64_t cur = kept[dev].load(std::memory_order_relaxed);
    while (cur < thr && !kept[dev].compare_exchange_weak(cur, thr, std::memory_order_relaxed)) {
    }
  }
}

}  // namespace sieve::attention::cuda
