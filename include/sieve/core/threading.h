// Thread count control for the OpenMP-parallel kernels.
//
// sieve uses OpenMP for CPU parallelism. set_num_threads(0) restores the default (all cores or
// OMP_NUM_THREADS). Parallel loops inside the library use num_threads() so that callers can run
// kernels single-threaded (for example inside their own thread pool).
#pragma once

namespace sieve {

/// Number of threads sieve's parallel loops use.
int num_threads();
/// Sets the thread count for sieve's parallel loops; 0 = default.
void set_num_threads(int n);

}  // namespace sieve
