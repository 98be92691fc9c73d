// Explicit instantiation of nuts for AnyTarget.
#include "sieve/mcmc/samplers/nuts.h"

namespace sieve::mcmc {
template Chain nuts<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const NutsSettings&, Rng&);
}  // namespace sieve::mcmc
