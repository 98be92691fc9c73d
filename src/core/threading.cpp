#include "sieve/core/threading.h"

#include <omp.h>

#include <atomic>

namespace sieve {

namespace {
std::atomic<int> g_threads{0};
}

int num_threads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

void set_num_threads(int n) { g_threads.store(n < 0 ? 0 : n, std::memory_order_relaxed); }

}  // namespace sieve
