// Explicit instantiation of aimh for AnyTarget.
#include "sieve/mcmc/samplers/aimh.h"

namespace sieve::mcmc {
template Chain aimh<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const AimhSettings&, Rng&);
}  // namespace sieve::mcmc
