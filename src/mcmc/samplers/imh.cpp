// Explicit instantiation of imh for AnyTarget.
#include "sieve/mcmc/samplers/imh.h"

namespace sieve::mcmc {
template Chain imh<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const ImhSettings&, Rng&);
}  // namespace sieve::mcmc
