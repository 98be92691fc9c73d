#include "sieve/mcmc/target.h"

#include <Eigen/Eigenvalues>

namespace sieve::mcmc {

std::vector<std::string> default_parameter_names(Eigen::Index dim, const std::string& base) {
  std::vector<std::string> names;
  names.reserve(size_t(dim));
  for (Eigen::Index i = 0; i < dim; ++i) names.push_back(base + "." + std::to_string(i + 1));
  return names;
}

void clip_to_positive_definite(Eigen::MatrixXd& m, double floor) {
  SIEVE_CHECK(floor > 0, "clip_to_positive_definite: floor must be positive, got {}", floor);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(0.5 * (m + m.transpose()));
  SIEVE_CHECK(es.info() == Eigen::Success, "clip_to_positive_definite: eigen decomposition failed");
  const Eigen::VectorXd lambda = es.eigenvalues().cwiseAbs().cwiseMax(floor);
  m = es.eigenvectors() * lambda.asDiagonal() * es.eigenvectors().transpose();
  m = (0.5 * (m + m.transpose())).eval();
}

}  // namespace sieve::mcmc
