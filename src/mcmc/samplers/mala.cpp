// Explicit instantiation of mala for AnyTarget.
#include "sieve/mcmc/samplers/mala.h"

namespace sieve::mcmc {
template Chain mala<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const MalaSettings&, Rng&);
}  // namespace sieve::mcmc
