// Control-variate estimators over stored traces (see control_variates.h for the formulas).
#include "sieve/mcmc/control_variates.h"

#include <cmath>
#include <limits>

#include "sieve/core/error.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {

// ---- polynomial functions ----------------------------------------------------------------------

double QuadraticFunction::operator()(const Eigen::VectorXd& x) const {
  double v = constant;
  for (const auto& l : linear) v += l.coef * x[l.i];
  for (const auto& q : quadratic) v += q.w * x[q.i] * x[q.j];
  return v;
}

double QuadraticFunction::expectation(const Eigen::VectorXd& m, const Eigen::MatrixXd& s) const {
  double v = constant;
  for (const auto& l : linear) v += l.coef * m[l.i];
  for (const auto& q : quadratic) v += q.w * (s(q.i, q.j) + m[q.i] * m[q.j]);
  return v;
}

double QuadraticFunction::expectation_diagonal(const Eigen::VectorXd& m,
                                               const Eigen::VectorXd& var) const {
  double v = constant;
  for (const auto& l : linear) v += l.coef * m[l.i];
  for (const auto& q : quadratic) {
    SIEVE_CHECK(q.i == q.j,
                "{}: a term x_{} x_{} needs the proposal's full covariance, but only "
                "its diagonal is stored for this sampler",
                name, q.i, q.j);
    v += q.w * (var[q.i] + m[q.i] * m[q.i]);
  }
  return v;
}

std::vector<QuadraticFunction> coordinate_functions(Eigen::Index dim,
                                                    const std::vector<std::string>& names) {
  const auto n = names.empty() ? default_parameter_names(dim) : names;
  SIEVE_CHECK(Eigen::Index(n.size()) == dim, "coordinate_functions: {} names for dim {}", n.size(),
              dim);
  std::vector<QuadraticFunction> f(static_cast<size_t>(dim));
  for (Eigen::Index i = 0; i < dim; ++i) {
    f[size_t(i)].name = n[size_t(i)];
    f[size_t(i)].linear = {{i, 1.0}};
  }
  return f;
}

std::vector<QuadraticFunction> square_functions(Eigen::Index dim,
                                                const std::vector<std::string>& names) {
  const auto n = names.empty() ? default_parameter_names(dim) : names;
  SIEVE_CHECK(Eigen::Index(n.size()) == dim, "square_functions: {} names for dim {}", n.size(),
              dim);
  std::vector<QuadraticFunction> f(static_cast<size_t>(dim));
  for (Eigen::Index i = 0; i < dim; ++i) {
    f[size_t(i)].name = n[size_t(i)] + "^2";
    f[size_t(i)].quadratic = {{i, i, 1.0}};
  }
  return f;
}

QuadraticFunction quadratic_function(const QuadraticForm& q, std::string name) {
  QuadraticFunction f;
  f.name = std::move(name);
  f.constant = q.c;
  for (Eigen::Index i = 0; i < q.a.size(); ++i)
    if (q.a[i] != 0) f.linear.push_back({i, q.a[i]});
  for (Eigen::Index j = 0; j < q.B.cols(); ++j)
    for (Eigen::Index i = 0; i < q.B.rows(); ++i)
      if (q.B(i, j) != 0) f.quadratic.push_back({i, j, q.B(i, j)});
  return f;
}

namespace {

// ---- chain checks and proposal moments ---------------------------------------------------------

void check_chains(const std::vector<Chain>& chains, const char* what) {
  SIEVE_CHECK(!chains.empty(), "{}: no chains", what);
  const Eigen::Index d = chains.front().dim();
  for (const auto& c : chains) {
    SIEVE_CHECK(c.dim() == d, "{}: chains have different dimensions", what);
    SIEVE_CHECK(c.num_draws() >= 2, "{}: each chain needs at least 2 draws", what);
  }
}

void check_functions(const std::vector<QuadraticFunction>& f, Eigen::Index d, const char* what) {
  SIEVE_CHECK(!f.empty(), "{}: no functions", what);
  for (const auto& fn : f) {
    for (const auto& l : fn.linear)
      SIEVE_CHECK(l.i >= 0 && l.i < d, "{}: {} uses coordinate {} of {}", what, fn.name, l.i, d);
    for (const auto& q : fn.quadratic)
      SIEVE_CHECK(q.i >= 0 && q.i < d && q.j >= 0 && q.j < d,
                  "{}: {} uses coordinates ({}, {}) of {}", what, fn.name, q.i, q.j, d);
  }
}

/// E[G(Y_{t+1}) | X_t] for the chain's proposal.
class ProposalMoments {
 public:
  explicit ProposalMoments(const Chain& c) : c_(c) {
    const Eigen::Index n = c.num_draws(), d = c.dim();
    SIEVE_CHECK(c.proposal_kind != ProposalKind::kNone,
                "sampler {} has no single proposal per step (use zero-variance control variates)",
                c.sampler);
    SIEVE_CHECK(c.proposals.rows() == n && c.proposals.cols() == d,
                "chain of {} has no stored proposals (run with store_proposals=true)", c.sampler);
    if (c.proposal_kind == ProposalKind::kIndependent) {
      SIEVE_CHECK(c.adapted.mu.size() == d && c.adapted.sigma.rows() == d,
                  "chain of {} lacks its proposal parameters", c.sampler);
      // Student-t with scale S has covariance S nu / (nu - 2).
      const double nu = c.adapted.nu;
      SIEVE_CHECK(!(nu <= 2), "independent proposal with nu = {} has no finite covariance", nu);
      q_cov_ =
          std::isinf(nu) ? c.adapted.sigma : Eigen::MatrixXd(c.adapted.sigma * (nu / (nu - 2)));
    } else {
      SIEVE_CHECK(c.proposal_means.rows() == n, "chain of {} lacks proposal means", c.sampler);
      per_iteration_ = c.proposal_vars.rows() == n;
      SIEVE_CHECK(per_iteration_ || c.adapted.proposal_cov.rows() == d,
                  "chain of {} lacks the proposal covariance", c.sampler);
    }
  }
  /// Reads row t of the stored moments in place (no copy: bases can have d functions in d dims).
  double expect(const QuadraticFunction& g, Eigen::Index t) const {
    if (c_.proposal_kind == ProposalKind::kIndependent) return g.expectation(c_.adapted.mu, q_cov_);
    const Eigen::MatrixXd& m = c_.proposal_means;
    double v = g.constant;
    for (const auto& l : g.linear) v += l.coef * m(t, l.i);
    for (const auto& q : g.quadratic) {
      double cov;
      if (per_iteration_) {
        SIEVE_CHECK(q.i == q.j,
                    "{}: a term x_{} x_{} needs the proposal's full covariance, but "
                    "only its diagonal is stored for sampler {}",
                    g.name, q.i, q.j, c_.sampler);
        cov = c_.proposal_vars(t, q.i);
      } else {
        cov = c_.adapted.proposal_cov(q.i, q.j);
      }
      v += q.w * (cov + m(t, q.i) * m(t, q.j));
    }
    return v;
  }
  bool independent() const { return c_.proposal_kind == ProposalKind::kIndependent; }

 private:
  const Chain& c_;
  Eigen::MatrixXd q_cov_;
  bool per_iteration_ = false;
};

/// The exact Poisson solution of F for the GI kernel (AR(1) with rho = 1 - gamma towards mu):
/// F^ = (x - mu)'B(x - mu) / (2 gamma - gamma^2) + 2 mu'B_sym(x - mu) / gamma + a'x / gamma,
/// constants dropped (research/mcmc.md §1.5).
QuadraticFunction gaussian_poisson_solution(const QuadraticFunction& f, const Eigen::VectorXd& mu,
                                            double gamma) {
  const double c2 = 2 * gamma - gamma * gamma;
  QuadraticFunction g;
  g.name = f.name;
  for (const auto& l : f.linear) g.linear.push_back({l.i, l.coef / gamma});
  for (const auto& q : f.quadratic) {
    g.quadratic.push_back({q.i, q.j, q.w / c2});
    g.linear.push_back({q.i, q.w * (mu[q.j] / gamma - mu[q.j] / c2)});
    g.linear.push_back({q.j, q.w * (mu[q.i] / gamma - mu[q.i] / c2)});
  }
  return g;
}

double gi_gamma(const Chain& c) {
  const std::string& s = c.sampler;
  if (s == "pcn") {
    const double beta = c.adapted.gamma;
    return 1 - std::sqrt(std::max(0.0, 1 - beta * beta));
  }
  SIEVE_CHECK(s == "gi-rwm" || s == "gi-mala" || s == "gi-mala2",
              "the exact Gaussian Poisson solution applies to GI kernels (gi-rwm, gi-mala, "
              "gi-mala2) and pcn, not to {}",
              s);
  return c.adapted.gamma;
}

std::vector<QuadraticFunction> shared_basis(CvBasis basis, Eigen::Index d) {
  std::vector<QuadraticFunction> g = coordinate_functions(d);
  if (basis == CvBasis::kQuadraticDiagonal) {
    auto sq = square_functions(d);
    g.insert(g.end(), sq.begin(), sq.end());
  } else if (basis == CvBasis::kQuadratic) {
    for (Eigen::Index i = 0; i < d; ++i)
      for (Eigen::Index j = i; j < d; ++j) {
        QuadraticFunction q;
        q.name = fmt::format("x{}x{}", i, j);
        q.quadratic = {{i, j, 1.0}};
        g.push_back(q);
      }
  }
  return g;
}

// ---- designs and coefficients ------------------------------------------------------------------

/// Zero-mean variables U [N, k] and, for the DK formula, G(X_t) and PG(X_t) estimates [N, k].
struct Design {
  Eigen::MatrixXd u, gx, pg;
};

/// Fills rows [row0, row0 + n) of `d` for chain c and basis g (one column per function).
void fill_design(const Chain& c, const std::vector<QuadraticFunction>& g, CvConstruction how,
                 Eigen::Index row0, Design& d) {
  const ProposalMoments pm(c);
  const Eigen::Index n = c.num_draws();
  for (Eigen::Index t = 0; t < n; ++t) {
    const Eigen::VectorXd x = c.draws.row(t).transpose(), y = c.proposals.row(t).transpose();
    const double reject = 1 - c.accept_prob[t];
    for (size_t k = 0; k < g.size(); ++k) {
      const double gx = g[k](x), gy = g[k](y), qg = pm.expect(g[k], t);
      // PG(x) = QG(x) - E[(1 - alpha)(G(Y) - G(x))]: a one-draw unbiased estimate.
      const double pg = qg - reject * (gy - gx);
      d.gx(row0 + t, Eigen::Index(k)) = gx;
      d.pg(row0 + t, Eigen::Index(k)) = pg;
      d.u(row0 + t, Eigen::Index(k)) =
          how == CvConstruction::kAcceptanceWeighted ? gx - pg : gy - qg;
    }
  }
}

/// Chain layout of the stacked rows, and fold membership for cross-fitting.
struct Rows {
  std::vector<Eigen::Index> start, length;
  Eigen::Index total = 0;
  explicit Rows(const std::vector<Chain>& chains) {
    for (const auto& c : chains) {
      start.push_back(total);
      length.push_back(c.num_draws());
      total += c.num_draws();
    }
  }
  /// fold 0: first half of every chain, fold 1: second half; -1: all rows.
  std::vector<Eigen::Index> select(int fold) const {
    std::vector<Eigen::Index> r;
    for (size_t c = 0; c < start.size(); ++c) {
      const Eigen::Index half = length[c] / 2;
      const Eigen::Index b = fold == 1 ? half : 0, e = fold == 0 ? half : length[c];
      for (Eigen::Index t = b; t < e; ++t) r.push_back(start[c] + t);
    }
    return r;
  }
  /// (previous, current) row pairs inside one chain, both in `fold`.
  std::vector<std::pair<Eigen::Index, Eigen::Index>> lag_pairs(int fold) const {
    std::vector<std::pair<Eigen::Index, Eigen::Index>> p;
    for (size_t c = 0; c < start.size(); ++c) {
      const Eigen::Index half = length[c] / 2;
      const Eigen::Index b = fold == 1 ? half : 0, e = fold == 0 ? half : length[c];
      for (Eigen::Index t = b + 1; t < e; ++t) p.emplace_back(start[c] + t - 1, start[c] + t);
    }
    return p;
  }
};

Eigen::MatrixXd take_rows(const Eigen::MatrixXd& m, const std::vector<Eigen::Index>& rows) {
  Eigen::MatrixXd out(Eigen::Index(rows.size()), m.cols());
  for (size_t r = 0; r < rows.size(); ++r) out.row(Eigen::Index(r)) = m.row(rows[r]);
  return out;
}

/// theta [k, m] from the rows of one fold.
Eigen::MatrixXd solve_theta(const Design& d, const Eigen::MatrixXd& f, const Rows& rows, int fold,
                            CvCoefficients how, double ridge) {
  const Eigen::Index k = d.u.cols(), m = f.cols();
  if (how == CvCoefficients::kOne) {
    SIEVE_CHECK(k == 1, "theta = 1 needs one basis function per F (kFunction or kGaussianPoisson)");
    return Eigen::MatrixXd::Ones(1, m);
  }
  const auto sel = rows.select(fold);
  SIEVE_CHECK(Eigen::Index(sel.size()) > k + 1,
              "{} rows cannot determine {} control-variate coefficients", sel.size(), k);
  if (how == CvCoefficients::kDellaportasKontoyiannis) {
    // theta = Gamma^{-1} [mean(F (G + PG)) - mean(F) mean(G + PG)],
    // Gamma = mean over consecutive pairs of (G(X_t) - PG(X_{t-1}))(...)'.
    const Eigen::MatrixXd fs = take_rows(f, sel);
    const Eigen::MatrixXd gp = take_rows(d.gx, sel) + take_rows(d.pg, sel);
    const double n = double(sel.size());
    const Eigen::MatrixXd num =
        (gp.transpose() * fs) / n - gp.colwise().mean().transpose() * fs.colwise().mean();
    Eigen::MatrixXd gamma = Eigen::MatrixXd::Zero(k, k);
    const auto pairs = rows.lag_pairs(fold);
    for (const auto& [prev, cur] : pairs) {
      const Eigen::VectorXd inc = (d.gx.row(cur) - d.pg.row(prev)).transpose();
      gamma.noalias() += inc * inc.transpose();
    }
    gamma /= double(pairs.size());
    return gamma.completeOrthogonalDecomposition().solve(num);
  }
  Eigen::MatrixXd u = take_rows(d.u, sel), fs = take_rows(f, sel);
  u.rowwise() -= u.colwise().mean();
  fs.rowwise() -= fs.colwise().mean();
  if (how == CvCoefficients::kRidge) {
    SIEVE_CHECK(ridge >= 0, "ridge must be >= 0, got {}", ridge);
    Eigen::MatrixXd a = u.transpose() * u;
    const double lambda = ridge * std::max(a.diagonal().mean(), 1e-300);
    a.diagonal().array() += lambda;
    return a.ldlt().solve(u.transpose() * fs);
  }
  // Minimum-norm least squares: rank-deficient designs (e.g. U identically 0 when every proposal
  // is accepted under an exact basis) give theta = 0 instead of NaN.
  return u.completeOrthogonalDecomposition().solve(fs);
}

/// series = F - U theta, with theta from the other fold when cross-fitting.
void apply_theta(const Design& d, const Eigen::MatrixXd& f, const Rows& rows, CvCoefficients how,
                 double ridge, bool cross_fit, Eigen::MatrixXd& series, Eigen::MatrixXd& theta) {
  if (!cross_fit || how == CvCoefficients::kOne) {
    theta = solve_theta(d, f, rows, -1, how, ridge);
    series = f - d.u * theta;
    return;
  }
  const Eigen::MatrixXd t0 = solve_theta(d, f, rows, 0, how, ridge);
  const Eigen::MatrixXd t1 = solve_theta(d, f, rows, 1, how, ridge);
  series.resize(f.rows(), f.cols());
  for (Eigen::Index r : rows.select(0)) series.row(r) = f.row(r) - d.u.row(r) * t1;
  for (Eigen::Index r : rows.select(1)) series.row(r) = f.row(r) - d.u.row(r) * t0;
  theta = 0.5 * (t0 + t1);
}

Eigen::MatrixXd function_values(const std::vector<Chain>& chains,
                                const std::vector<QuadraticFunction>& f, const Rows& rows) {
  Eigen::MatrixXd v(rows.total, Eigen::Index(f.size()));
  for (size_t c = 0; c < chains.size(); ++c)
    for (Eigen::Index t = 0; t < chains[c].num_draws(); ++t) {
      const Eigen::VectorXd x = chains[c].draws.row(t).transpose();
      for (size_t j = 0; j < f.size(); ++j) v(rows.start[c] + t, Eigen::Index(j)) = f[j](x);
    }
  return v;
}

/// F(X_{t+1}) for every stored t: X_{t+1} = Y_{t+1} when accepted[t], else X_t (so the state after
/// the last stored draw is known too).
Eigen::MatrixXd next_function_values(const std::vector<Chain>& chains,
                                     const std::vector<QuadraticFunction>& f, const Rows& rows) {
  Eigen::MatrixXd v(rows.total, Eigen::Index(f.size()));
  for (size_t c = 0; c < chains.size(); ++c)
    for (Eigen::Index t = 0; t < chains[c].num_draws(); ++t) {
      const Eigen::VectorXd x = chains[c].accepted[size_t(t)]
                                    ? chains[c].proposals.row(t).transpose()
                                    : chains[c].draws.row(t).transpose();
      for (size_t j = 0; j < f.size(); ++j) v(rows.start[c] + t, Eigen::Index(j)) = f[j](x);
    }
  return v;
}

CvResult make_result(std::string method, const std::vector<QuadraticFunction>& f,
                     const Eigen::MatrixXd& values, Eigen::MatrixXd series, Eigen::MatrixXd theta,
                     const Rows& rows) {
  CvResult r;
  r.method = std::move(method);
  for (const auto& fn : f) r.names.push_back(fn.name);
  r.plain = values.colwise().mean().transpose();
  r.estimate = series.colwise().mean().transpose();
  r.series = std::move(series);
  r.theta = std::move(theta);
  r.chain_draws = rows.length;
  return r;
}

const char* coefficients_name(CvCoefficients c) {
  switch (c) {
    case CvCoefficients::kOne:
      return "theta=1";
    case CvCoefficients::kOls:
      return "ols";
    case CvCoefficients::kRidge:
      return "ridge";
    case CvCoefficients::kDellaportasKontoyiannis:
      return "dk";
  }
  return "?";
}

}  // namespace

CvResult plain_means(const std::vector<Chain>& chains, const std::vector<QuadraticFunction>& f) {
  check_chains(chains, "plain_means");
  check_functions(f, chains.front().dim(), "plain_means");
  const Rows rows(chains);
  const Eigen::MatrixXd v = function_values(chains, f, rows);
  return make_result("plain", f, v, v, Eigen::MatrixXd(), rows);
}

CvResult poisson_control_variates(const std::vector<Chain>& chains,
                                  const std::vector<QuadraticFunction>& f, const CvSettings& s) {
  check_chains(chains, "poisson_control_variates");
  const Eigen::Index d = chains.front().dim();
  check_functions(f, d, "poisson_control_variates");
  const Rows rows(chains);
  const Eigen::MatrixXd values = function_values(chains, f, rows);
  for (const auto& c : chains) (void)ProposalMoments(c);  // validates before any work
  // The martingale U_t = G(Y_{t+1}) - QG(X_t) carries information about the next state, so it is
  // paired with F(X_{t+1}) (whose pi-mean is the same); the acceptance-weighted U_t with F(X_t).
  const Eigen::MatrixXd target_values = s.construction == CvConstruction::kProposalMartingale
                                            ? next_function_values(chains, f, rows)
                                            : values;
  const bool per_function = s.basis == CvBasis::kFunction || s.basis == CvBasis::kGaussianPoisson;
  SIEVE_CHECK(per_function || s.coefficients != CvCoefficients::kOne,
              "theta = 1 needs the kFunction or kGaussianPoisson basis");
  const std::string method =
      fmt::format("poisson({}, {}{})",
                  s.basis == CvBasis::kLinear              ? "linear"
                  : s.basis == CvBasis::kQuadraticDiagonal ? "quadratic-diagonal"
                  : s.basis == CvBasis::kQuadratic         ? "quadratic"
                  : s.basis == CvBasis::kFunction          ? "function"
                                                           : "gaussian-exact",
                  coefficients_name(s.coefficients), s.cross_fit ? ", cross-fit" : "");
  Eigen::MatrixXd series, theta;
  if (!per_function) {
    const auto basis = shared_basis(s.basis, d);
    const Eigen::Index k = Eigen::Index(basis.size());
    Design des{Eigen::MatrixXd(rows.total, k), Eigen::MatrixXd(rows.total, k),
               Eigen::MatrixXd(rows.total, k)};
    for (size_t c = 0; c < chains.size(); ++c)
      fill_design(chains[c], basis, s.construction, rows.start[c], des);
    apply_theta(des, target_values, rows, s.coefficients, s.ridge, s.cross_fit, series, theta);
    return make_result(method, f, values, std::move(series), std::move(theta), rows);
  }
  // One basis function per F (G_j = F_j or its Gaussian Poisson solution, per chain since gamma
  // and mu are each chain's own), all filled in one pass; theta_j is solved column by column.
  const Eigen::Index m = Eigen::Index(f.size());
  Design all{Eigen::MatrixXd(rows.total, m), Eigen::MatrixXd(rows.total, m),
             Eigen::MatrixXd(rows.total, m)};
  for (size_t c = 0; c < chains.size(); ++c) {
    const Chain& ch = chains[c];
    std::vector<QuadraticFunction> g = f;
    if (s.basis == CvBasis::kGaussianPoisson) {
      SIEVE_CHECK(ch.adapted.mu.size() == d, "chain of {} has no adapted mean", ch.sampler);
      const double gamma = gi_gamma(ch);
      for (auto& gj : g) gj = gaussian_poisson_solution(gj, ch.adapted.mu, gamma);
    }
    fill_design(ch, g, s.construction, rows.start[c], all);
  }
  series.resize(rows.total, m);
  theta.resize(1, m);
  for (Eigen::Index j = 0; j < m; ++j) {
    const Design dj{all.u.col(j), all.gx.col(j), all.pg.col(j)};
    Eigen::MatrixXd sj, tj;
    apply_theta(dj, target_values.col(j), rows, s.coefficients, s.ridge, s.cross_fit, sj, tj);
    series.col(j) = sj;
    theta(0, j) = tj(0, 0);
  }
  return make_result(method, f, values, std::move(series), std::move(theta), rows);
}

CvResult imh_control_variates(const std::vector<Chain>& chains,
                              const std::vector<QuadraticFunction>& f,
                              CvCoefficients coefficients) {
  check_chains(chains, "imh_control_variates");
  for (const auto& c : chains)
    SIEVE_CHECK(c.proposal_kind == ProposalKind::kIndependent,
                "imh control variates need an independent Metropolis chain, not {}", c.sampler);
  CvSettings s;
  s.basis = CvBasis::kFunction;
  s.coefficients = coefficients;
  CvResult r = poisson_control_variates(chains, f, s);
  r.method = fmt::format("imh({})", coefficients_name(coefficients));
  return r;
}

CvResult zero_variance_control_variates(const std::vector<Chain>& chains,
                                        const std::vector<QuadraticFunction>& f, int order,
                                        CvCoefficients coefficients, double ridge) {
  check_chains(chains, "zero_variance_control_variates");
  const Eigen::Index d = chains.front().dim();
  check_functions(f, d, "zero_variance_control_variates");
  SIEVE_CHECK(order == 1 || order == 2, "zero-variance control variates: order must be 1 or 2");
  SIEVE_CHECK(coefficients == CvCoefficients::kOls || coefficients == CvCoefficients::kRidge,
              "zero-variance control variates take ols or ridge coefficients");
  for (const auto& c : chains)
    SIEVE_CHECK(c.gradients.rows() == c.num_draws(),
                "chain of {} has no stored gradients (run with store_gradients=true)", c.sampler);
  const Rows rows(chains);
  const Eigen::MatrixXd values = function_values(chains, f, rows);
  // psi for P = x_i: d/dx_i log pi; for P = x_i x_j: x_j g_i + x_i g_j + 2 [i == j].
  const Eigen::Index k = order == 1 ? d : d + d * (d + 1) / 2;
  Design des{Eigen::MatrixXd(rows.total, k), Eigen::MatrixXd(), Eigen::MatrixXd()};
  for (size_t c = 0; c < chains.size(); ++c)
    for (Eigen::Index t = 0; t < chains[c].num_draws(); ++t) {
      const Eigen::Index r = rows.start[c] + t;
      const auto x = chains[c].draws.row(t);
      const auto g = chains[c].gradients.row(t);
      des.u.row(r).head(d) = g;
      if (order == 2) {
        Eigen::Index col = d;
        for (Eigen::Index i = 0; i < d; ++i)
          for (Eigen::Index j = i; j < d; ++j)
            des.u(r, col++) = x[j] * g[i] + x[i] * g[j] + (i == j ? 2.0 : 0.0);
      }
    }
  Eigen::MatrixXd series, theta;
  apply_theta(des, values, rows, coefficients, ridge, false, series, theta);
  return make_result(fmt::format("zv(order {}, {})", order, coefficients_name(coefficients)), f,
                     values, std::move(series), std::move(theta), rows);
}

CvResult control_variates(std::string_view method, const std::vector<Chain>& chains,
                          const std::vector<QuadraticFunction>& f) {
  if (method == "none") return plain_means(chains, f);
  if (method == "zv") return zero_variance_control_variates(chains, f, 1);
  if (method == "imh") return imh_control_variates(chains, f, CvCoefficients::kOne);
  SIEVE_CHECK(method == "poisson", "unknown control variate '{}' (none, poisson, imh, zv)", method);
  check_chains(chains, "control_variates");
  const Chain& c = chains.front();
  CvSettings s;
  s.coefficients = CvCoefficients::kOls;
  if (c.sampler == "gi-rwm" || c.sampler == "gi-mala" || c.sampler == "gi-mala2" ||
      c.sampler == "pcn") {
    s.basis = CvBasis::kGaussianPoisson;
  } else if (c.proposal_kind == ProposalKind::kIndependent) {
    s.basis = CvBasis::kFunction;
  } else {
    SIEVE_CHECK(c.proposal_kind == ProposalKind::kGaussian,
                "--cv poisson needs a sampler with a proposal per step; {} has none (use --cv zv)",
                c.sampler);
    // No exact Poisson solution for these kernels: regress on the linear + square basis.
    s.basis = CvBasis::kQuadraticDiagonal;
  }
  return poisson_control_variates(chains, f, s);
}

}  // namespace sieve::mcmc
