#include "sieve/mcmc/samplers/driver.h"

namespace sieve::mcmc::detail {

Eigen::MatrixXd cholesky_lower(const Eigen::MatrixXd& m, const char* what) {
  SIEVE_CHECK(m.rows() == m.cols() && m.rows() > 0,
              "{}: expected a non-empty square matrix, got {}x{}", what, m.rows(), m.cols());
  SIEVE_CHECK(m.allFinite(), "{}: matrix has non-finite entries", what);
  Eigen::LLT<Eigen::MatrixXd> llt(m);
  if (llt.info() == Eigen::Success) return llt.matrixL();
  // Numerically semi-definite estimates (few draws, collinear coordinates): add growing jitter.
  const double scale = std::max(m.diagonal().cwiseAbs().mean(), 1e-300);
  for (double jitter = 1e-10; jitter <= 1e-2; jitter *= 10) {
    Eigen::MatrixXd mj = m;
    mj.diagonal().array() += jitter * scale;
    llt.compute(mj);
    if (llt.info() == Eigen::Success) return llt.matrixL();
  }
  SIEVE_FAIL("{}: matrix is not positive definite", what);
}

WindowSchedule::WindowSchedule(int64_t num_warmup, int64_t init_buffer, int64_t term_buffer,
                               int64_t base_window) {
  if (num_warmup < 20) return;  // Stan: too short to adapt a metric
  if (init_buffer + base_window + term_buffer > num_warmup) {
    init_buffer = int64_t(0.15 * double(num_warmup));
    term_buffer = int64_t(0.1 * double(num_warmup));
    base_window = num_warmup - (init_buffer + term_buffer);
  }
  const int64_t last = num_warmup - term_buffer;  // slow windows end here
  int64_t begin = init_buffer, size = base_window;
  while (begin < last) {
    int64_t end = begin + size;
    // Stan stretches a window whose successor (twice as long) would not fit.
    if (end + 2 * size > last) end = last;
    windows_.emplace_back(begin, end);
    begin = end;
    size *= 2;
  }
}

bool WindowSchedule::in_window(int64_t it) const {
  for (const auto& [b, e] : windows_)
    if (it >= b && it < e) return true;
  return false;
}

bool WindowSchedule::window_end(int64_t it) const {
  for (const auto& [b, e] : windows_)
    if (it == e - 1) return true;
  return false;
}

void check_run_settings(const RunSettings& s) {
  SIEVE_CHECK(s.num_warmup >= 0, "num_warmup must be >= 0, got {}", s.num_warmup);
  SIEVE_CHECK(s.num_draws >= 1, "num_draws must be >= 1, got {}", s.num_draws);
}

}  // namespace sieve::mcmc::detail
