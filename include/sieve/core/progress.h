// Progress reporting on stderr for long work (prefill, sweeps, chains).
//
// Prints at most a few lines per second and only when stderr is a terminal or SIEVE_PROGRESS=1;
// SIEVE_PROGRESS=0 silences it. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "sieve/core/timer.h"

namespace sieve {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  /// Adds `n` finished units and maybe prints "label: done/total (pct) eta".
  void advance(int64_t n = 1);
  void finish();
  static bool enabled();

 private:
  std::string label_;
  int64_t total_, done_ = 0;
  double last_print_ = -1;
  bool finished_ = false;
  Timer timer_;
  std::mutex mu_;
};

}  // namespace sieve
