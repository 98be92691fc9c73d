// Internal: host helpers shared by the GPU selector launchers (device_selectors.cpp for rr,
// unisparse, streaming and dense; device_selectors_peers.cpp for sample, xattn and the others):
// stream-ordered scratch memory, launch-status checks, block geometry of a prefill, the pattern
// header + CSR assembled from per-row block lists, and optional per-stage timing.
#pragma once

#include "../selectors/cuda/estimation_gpu.h"
#include "memory_pool.h"
#include "sieve/attention/cuda/api.h"
#include "sieve/attention/cuda/check.h"
#include "sieve/attention/selector.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace sieve::attention::cuda {

// Stream-ordered scratch allocations, released (stream-ordered) when the object goes away. Every
// selector launcher allocates through one, so the pool threshold is raised here for all of them.
class Scratch {
 public:
  explicit Scratch(cudaStream_t s) : stream_(s) { keep_pool_memory(); }  // 4 GiB
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

// A pattern of query heads with room for every row's blocks (rows x nkb); column_capacity >= 0
// reserves a token-column part of that capacity (filled by the caller) with the given band.
inline DevicePattern allocate_pattern(const est::Geometry& g, const AttentionShape& s, bool causal,
                                      cudaStream_t stream, int64_t column_capacity = -1,
                                      int64_t band = 0) {
  DevicePatternView h;
  h.seq_len_q = s.seq_len_q;
  h.seq_len_k = s.seq_len_k;
  h.block_q = g.block_q;
  h.block_k = g.block_k;
  h.num_heads = int(s.num_heads_q);
  h.causal = causal;
  h.band = band;
  return DevicePattern::allocate(h, int64_t(s.num_heads_q) * g.nqb * g.nkb, column_capacity, stream);
}

// The pattern's block CSR assembled from per-row lists (counts [rows], lists [rows][nkb]).
inline void assemble_rows(const est::Geometry& g, const DevicePattern& p, const int* counts, const int* lists,
                          cudaStream_t stream) {
  const DevicePatternView& v = p.view();
  const int rows = v.num_heads * g.nqb;
  Scratch scratch(stream);
  auto* status = scratch.alloc<unsigned long long>(est::build_csr_status_words(rows));
  check(est::build_csr(rows, g.nkb, counts, lists, const_cast<int32_t*>(v.block_indptr),
                       const_cast<int32_t*>(v.block_indices), stream, status),
        "CSR assembly");
}

// The pattern header (query heads) and its CSR assembled from per-row lists.
inline DevicePattern finish_rows(const est::Geometry& g, const AttentionShape& s, bool causal, const int* counts,
                                 const int* lists, cudaStream_t stream) {
  DevicePattern p = allocate_pattern(g, s, causal, stream);
  assemble_rows(g, p, counts, lists, stream);
  return p;
}

// Stage times of one selector call, printed to stderr when the environment variable
// SIEVE_GPU_SELECT_PROFILE is set (CUDA events between stages; the destructor then synchronises,
// so it is off by default). SIEVE_GPU_SELECT_PROFILE=host records only the host's clock at each
// stage and at the end of the call (the destructor, after the scratch memory's release): no
// events, no synchronisation, so it shows where the host spends an ordinary call.
class StageProfile {
 public:
  StageProfile(const char* who, cudaStream_t s) : who_(who), stream_(s) {
    const char* env = std::getenv("SIEVE_GPU_SELECT_PROFILE");  // NOLINT(concurrency-mt-unsafe)
    on_ = env != nullptr && *env != '\0' && *env != '0';
    host_only_ = on_ && std::string_view(env) == "host";
    mark("start");
  }
  StageProfile(const StageProfile&) = delete;
  StageProfile& operator=(const StageProfile&) = delete;
  void mark(const char* stage) {
    if (!on_) return;
    if (host_only_) {
      stages_.emplace_back(stage);
      host_.push_back(std::chrono::steady_clock::now());
      return;
    }
    cudaEvent_t e = nullptr;
    if (cudaEventCreate(&e) != cudaSuccess || cudaEventRecord(e, stream_) != cudaSuccess) {
      on_ = false;
      return;
    }
    events_.push_back(e);
    stages_.emplace_back(stage);
    host_.push_back(std::chrono::steady_clock::now());
  }
  ~StageProfile() {
    // whole microseconds of host time since the first mark
    const auto us = [&](std::chrono::steady_clock::time_point t) {
      return std::to_string(int(std::chrono::duration<double, std::micro>(t - host_[0]).count()));
    };
    if (on_ && host_only_) {
      std::string line = std::string("[select host profile] ") + who_;
      for (size_t i = 1; i < host_.size(); ++i) line += " " + stages_[i] + "@" + us(host_[i]) + "us";
      line += " end@" + us(std::chrono::steady_clock::now()) + "us";
      std::fprintf(stderr, "%s\n", line.c_str());
      return;
    }
    if (on_ && cudaEventSynchronize(events_.back()) == cudaSuccess) {
      std::string line = std::string("[select profile] ") + who_;
      for (size_t i = 1; i < events_.size(); ++i) {
        float ms = 0;
        cudaEventElapsedTime(&ms, events_[i - 1], events_[i]);
        // GPU time of the stage, then when the host had enqueued it (us after the first mark): a
        // host time above the GPU's running sum means the GPU waited for the host.
        line += " " + stages_[i] + "=" + std::to_string(ms) + "ms(host@" + us(host_[i]) + "us)";
      }
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }

 private:
  const char* who_;
  cudaStream_t stream_;
  bool on_ = false, host_only_ = false;
  std::vector<cudaEvent_t> events_;
  std::vector<std::string> stages_;
  std::vector<std::chrono::steady_clock::time_point> host_;
};

// Ports of the peer selectors (device_selectors_peers.cpp: sample, xattn, vslash): whether
// `selector`, with its settings, is one of them, and its run (inputs already checked by
// select_on_device, the length at or above dense_below).
bool has_peer_port(const PatternSelector& selector);
DevicePattern select_peer(const PatternSelector& selector, const TensorView& q, const TensorView& k,
                          const AttentionShape& shape, const AttentionOptions& opts, cudaStream_t stream);

}  // namespace sieve::attention::cuda
