#include "sieve/core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sieve {

bool Progress::enabled() {
  if (const char* e = std::getenv("SIEVE_PROGRESS")) return std::strcmp(e, "0") != 0;
  return isatty(STDERR_FILENO) != 0;
}

Progress::Progress(std::string label, int64_t total) : label_(std::move(label)), total_(total) {}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  if (!enabled()) return;
  const double t = timer_.seconds();
  if (t - last_print_ < 0.5 && done_ < total_) return;
  last_print_ = t;
  const double frac = total_ > 0 ? double(done_) / double(total_) : 0.0;
  const double eta = frac > 0 ? t * (1.0 - frac) / frac : 0.0;
  std::fprintf(stderr, "\r%s: %lld/%lld (%.0f%%) %.1fs elapsed, eta %.1fs   ", label_.c_str(),
               (long long)done_, (long long)total_, 100.0 * frac, t, eta);
  std::fflush(stderr);
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  if (enabled() && last_print_ >= 0) std::fprintf(stderr, "\n");
}

}  // namespace sieve
