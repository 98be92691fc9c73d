// Explicit instantiation of gi_rwm for AnyTarget.
#include "sieve/mcmc/samplers/gi_rwm.h"

namespace sieve::mcmc {
template Chain gi_rwm<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const GiRwmSettings&,
                                 Rng&);
}  // namespace sieve::mcmc
