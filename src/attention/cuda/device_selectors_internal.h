// Internal: host helpers shared by the GPU selector launchers (device_selectors.cpp for rr,
// unisparse, streaming and dense; device_selectors_peers.cpp for sample, xattn and the others):
// stream-ordered scratch memory, launch-status checks, block geometry of a prefill, and the
// pattern header + CSR assembled from per-row block lists.
#pragma once

#include "../selectors/cuda/estimation_gpu.h"
#include "sieve/attention/cuda/api.h"
#include "sieve/attention/cuda/check.h"
#include "sieve/attention/selector.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sieve::attention::cuda {

// Stream-ordered scratch allocations, released (stream-ordered) when the object goes away.
class Scratch {
 public:
  explicit Scratch(cudaStream_t s) : stream_(s) {}
  ~Scratch() {
    for (void* p : ptrs_) cudaFreeAsync(p, stream_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* alloc(int64_t n) {
    void* p = nullptr;
    SIEVE_CUDA_CHECK(cudaMallocAsync(&p, size_t(std::max<int64_t>(n, 1)) * sizeof(T), stream_));
    ptrs_.push_back(p);
    return static_cast<T*>(p);
  }

 private:
  cudaStream_t stream_;
  std::vector<void*> ptrs_;
};

inline void check(cudaError_t e, const char* what) {
  SIEVE_CHECK(e == cudaSuccess, "GPU selector: {} failed: {}", what, cudaGetErrorString(e));
}

inline est::Geometry geometry(const AttentionShape& s, const SelectorCommon& c, bool causal) {
  est::Geometry g;
  g.seq_q = int(s.seq_len_q);
  g.seq_k = int(s.seq_len_k);
  g.q_offset = int(s.q_offset());
  g.block_q = c.block_q;
  g.block_k = c.block_k;
  g.nqb = int((s.seq_len_q + c.block_q - 1) / c.block_q);
  g.nkb = int((s.seq_len_k + c.block_k - 1) / c.block_k);
  g.causal = causal;
  return g;
}

// The pattern header (query heads) and its CSR assembled from per-row lists. column_capacity >= 0
// reserves a token-column part of that capacity (its arrays filled by the caller) and sets band.
inline DevicePattern finish_rows(const est::Geometry& g, const AttentionShape& s, bool causal, const int* counts,
                                 const int* lists, cudaStream_t stream, int64_t column_capacity = -1,
                                 int64_t band = 0) {
  DevicePatternView h;
  h.seq_len_q = s.seq_len_q;
  h.seq_len_k = s.seq_len_k;
  h.block_q = g.block_q;
  h.block_k = g.block_k;
  h.num_heads = int(s.num_heads_q);
  h.causal = causal;
  h.band = band;
  const int rows = int(s.num_heads_q) * g.nqb;
  DevicePattern p = DevicePattern::allocate(h, int64_t(rows) * g.nkb, column_capacity);
  const DevicePatternView& v = p.view();
  check(est::build_csr(rows, g.nkb, counts, lists, const_cast<int32_t*>(v.block_indptr),
                       const_cast<int32_t*>(v.block_indices), stream),
        "CSR assembly");
  return p;
}

}  // namespace sieve::attention::cuda
