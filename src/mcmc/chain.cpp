#include "sieve/mcmc/chain.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "sieve/core/error.h"
#include "sieve/core/threading.h"

namespace sieve::mcmc {

double Chain::acceptance_rate() const {
  if (accepted.empty()) return 0.0;
  int64_t n = 0;
  for (uint8_t a : accepted) n += a;
  return double(n) / double(accepted.size());
}

std::vector<Chain> run_chains(int num_chains, uint64_t seed, int num_threads,
                              const ChainFunction& fn) {
  SIEVE_CHECK(num_chains > 0, "run_chains: num_chains must be positive, got {}", num_chains);
  SIEVE_CHECK(num_threads >= 0, "run_chains: num_threads must be >= 0, got {}", num_threads);
  std::vector<Chain> chains(static_cast<size_t>(num_chains));
  const int threads = std::min(num_chains, num_threads > 0 ? num_threads : sieve::num_threads());
  std::atomic<int> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  // Chain c always draws from Rng(seed, c), whichever thread runs it: results are independent of
  // the thread count and of scheduling.
  auto worker = [&] {
    for (;;) {
      const int c = next.fetch_add(1);
      if (c >= num_chains) return;
      try {
        Rng rng(seed, uint64_t(c));
        chains[size_t(c)] = fn(uint64_t(c), rng);
        chains[size_t(c)].chain_id = uint64_t(c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next.store(num_chains);
      }
    }
  };
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(size_t(threads));
    for (int i = 0; i < threads; ++i) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);
  return chains;
}

Eigen::MatrixXd pooled_draws(const std::vector<Chain>& chains) {
  SIEVE_CHECK(!chains.empty(), "pooled_draws: no chains");
  Eigen::Index rows = 0;
  const Eigen::Index d = chains.front().dim();
  for (const auto& c : chains) {
    SIEVE_CHECK(c.dim() == d, "pooled_draws: chains have different dimensions");
    rows += c.num_draws();
  }
  Eigen::MatrixXd out(rows, d);
  Eigen::Index r = 0;
  for (const auto& c : chains) {
    out.middleRows(r, c.num_draws()) = c.draws;
    r += c.num_draws();
  }
  return out;
}

}  // namespace sieve::mcmc
