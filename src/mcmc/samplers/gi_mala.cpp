// Explicit instantiation of gi_mala for AnyTarget.
#include "sieve/mcmc/samplers/gi_mala.h"

namespace sieve::mcmc {
template Chain gi_mala<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const GiMalaSettings&,
                                  Rng&);
}  // namespace sieve::mcmc
