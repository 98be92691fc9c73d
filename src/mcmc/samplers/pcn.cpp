// Explicit instantiation of pcn for AnyTarget.
#include "sieve/mcmc/samplers/pcn.h"

namespace sieve::mcmc {
template Chain pcn<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const PcnSettings&, Rng&);
}  // namespace sieve::mcmc
