// Explicit instantiation of gi_mala2 for AnyTarget.
#include "sieve/mcmc/samplers/gi_mala2.h"

namespace sieve::mcmc {
template Chain gi_mala2<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const GiMala2Settings&,
                                   Rng&);
}  // namespace sieve::mcmc
