// Explicit instantiation of pmala for AnyTarget.
#include "sieve/mcmc/samplers/pmala.h"

namespace sieve::mcmc {
template Chain pmala<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const PmalaSettings&,
                                Rng&);
}  // namespace sieve::mcmc
