// Explicit instantiation of mmala for AnyTarget.
#include "sieve/mcmc/samplers/mmala.h"

namespace sieve::mcmc {
template Chain mmala<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const MmalaSettings&,
                                Rng&);
}  // namespace sieve::mcmc
