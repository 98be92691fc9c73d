// Explicit instantiation of rwm for AnyTarget (one sampler per file keeps builds parallel).
#include "sieve/mcmc/samplers/rwm.h"

namespace sieve::mcmc {
template Chain rwm<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const RwmSettings&, Rng&);
}  // namespace sieve::mcmc
