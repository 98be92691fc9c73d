// Name -> sampler / model tables. Each sampler's settings struct is exposed field by field
// ("key" -> member) so that `--set key=value` reaches any setting without a parser per sampler.
#include "sieve/mcmc/registry.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <memory>
#include <sstream>

#include "sieve/core/error.h"
#include "sieve/core/progress.h"
#include "sieve/mcmc/models/banana.h"
#include "sieve/mcmc/models/gaussian.h"
#include "sieve/mcmc/models/gp_regression.h"
#include "sieve/mcmc/models/lgcp.h"
#include "sieve/mcmc/models/linear_regression.h"
#include "sieve/mcmc/models/logistic.h"
#include "sieve/mcmc/samplers/aimh.h"
#include "sieve/mcmc/samplers/gi_mala.h"
#include "sieve/mcmc/samplers/gi_mala2.h"
#include "sieve/mcmc/samplers/gi_rwm.h"
#include "sieve/mcmc/samplers/imh.h"
#include "sieve/mcmc/samplers/mala.h"
#include "sieve/mcmc/samplers/mmala.h"
#include "sieve/mcmc/samplers/nuts.h"
#include "sieve/mcmc/samplers/pcn.h"
#include "sieve/mcmc/samplers/pmala.h"
#include "sieve/mcmc/samplers/rwm.h"

namespace sieve::mcmc {

namespace {

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

double parse_double(const std::string& key, std::string_view text) {
  const std::string t = trim(text);
  if (t == "inf" || t == "+inf") return std::numeric_limits<double>::infinity();
  double v = 0;
  const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  SIEVE_CHECK(ec == std::errc() && p == t.data() + t.size() && !t.empty(),
              "setting '{}': '{}' is not a number", key, t);
  return v;
}

int64_t parse_int(const std::string& key, std::string_view text) {
  const std::string t = trim(text);
  int64_t v = 0;
  const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  SIEVE_CHECK(ec == std::errc() && p == t.data() + t.size() && !t.empty(),
              "setting '{}': '{}' is not an integer", key, t);
  return v;
}

bool parse_bool(const std::string& key, std::string_view text) {
  const std::string t = trim(text);
  if (t == "1" || t == "true" || t == "yes" || t == "on") return true;
  if (t == "0" || t == "false" || t == "no" || t == "off") return false;
  SIEVE_FAIL("setting '{}': '{}' is not a boolean (true/false/1/0)", key, t);
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> parts;
  size_t b = 0;
  for (;;) {
    const size_t e = s.find(sep, b);
    parts.push_back(trim(s.substr(b, e == std::string_view::npos ? s.size() - b : e - b)));
    if (e == std::string_view::npos) break;
    b = e + 1;
  }
  return parts;
}

Eigen::VectorXd parse_vector(const std::string& key, std::string_view text) {
  if (trim(text).empty()) return {};
  const auto parts = split(text, ',');
  Eigen::VectorXd v(Eigen::Index(parts.size()));
  for (size_t i = 0; i < parts.size(); ++i) v[Eigen::Index(i)] = parse_double(key, parts[i]);
  return v;
}

Eigen::MatrixXd parse_matrix(const std::string& key, std::string_view text) {
  if (trim(text).empty()) return {};
  const auto rows = split(text, ';');
  Eigen::MatrixXd m;
  for (size_t r = 0; r < rows.size(); ++r) {
    const Eigen::VectorXd row = parse_vector(key, rows[r]);
    if (r == 0) m.resize(Eigen::Index(rows.size()), row.size());
    SIEVE_CHECK(row.size() == m.cols(), "setting '{}': matrix rows have different lengths", key);
    m.row(Eigen::Index(r)) = row.transpose();
  }
  return m;
}

void append_listed(std::string& list, const std::string& item, const char* sep) {
  if (!list.empty()) list += sep;
  list += item;
}

std::string to_text(double v) { return fmt::format("{}", v); }
std::string to_text(const Eigen::VectorXd& v) {
  std::string s;
  for (Eigen::Index i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += to_text(v[i]);
  }
  return s;
}
std::string to_text(const Eigen::MatrixXd& m) {
  std::string s;
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    if (r) s += ';';
    s += to_text(Eigen::VectorXd(m.row(r).transpose()));
  }
  return s;
}

/// One settable field bound to a member of a live settings object.
struct Field {
  std::string key, description;
  std::function<void(std::string_view)> set;
  std::function<std::string()> get;
};

class Fields {
 public:
  Fields& add(std::string key, double& v, std::string desc) {
    fields_.push_back({key, std::move(desc),
                       [&v, key](std::string_view t) { v = parse_double(key, t); },
                       [&v] { return to_text(v); }});
    return *this;
  }
  Fields& add(std::string key, int64_t& v, std::string desc) {
    fields_.push_back({key, std::move(desc),
                       [&v, key](std::string_view t) { v = parse_int(key, t); },
                       [&v] { return std::to_string(v); }});
    return *this;
  }
  Fields& add(std::string key, int& v, std::string desc) {
    fields_.push_back({key, std::move(desc),
                       [&v, key](std::string_view t) { v = int(parse_int(key, t)); },
                       [&v] { return std::to_string(v); }});
    return *this;
  }
  Fields& add(std::string key, bool& v, std::string desc) {
    fields_.push_back({key, std::move(desc),
                       [&v, key](std::string_view t) { v = parse_bool(key, t); },
                       [&v] { return v ? "true" : "false"; }});
    return *this;
  }
  Fields& add(std::string key, Eigen::VectorXd& v, std::string desc) {
    fields_.push_back({key, std::move(desc),
                       [&v, key](std::string_view t) { v = parse_vector(key, t); },
                       [&v] { return to_text(v); }});
    return *this;
  }
  Fields& add(std::string key, Eigen::MatrixXd& v, std::string desc) {
    fields_.push_back({key, std::move(desc),
                       [&v, key](std::string_view t) { v = parse_matrix(key, t); },
                       [&v] { return to_text(v); }});
    return *this;
  }
  /// A string restricted to `choices`.
  Fields& add_choice(std::string key, std::string& v, std::vector<std::string> choices,
                     std::string desc) {
    std::string all;
    for (const auto& c : choices) append_listed(all, c, "|");
    fields_.push_back({key, desc + " (" + all + ")",
                       [&v, key, choices, all](std::string_view t) {
                         const std::string s = trim(t);
                         SIEVE_CHECK(std::find(choices.begin(), choices.end(), s) != choices.end(),
                                     "setting '{}': '{}' is not one of {}", key, s, all);
                         v = s;
                       },
                       [&v] { return v; }});
    return *this;
  }
  void apply(const KeyValues& kv, std::string_view owner) const {
    for (const auto& [k, v] : kv) {
      const std::string key = trim(k);
      auto it = std::find_if(fields_.begin(), fields_.end(),
                             [&](const Field& f) { return f.key == key; });
      SIEVE_CHECK(it != fields_.end(), "{} has no setting '{}' (known: {})", owner, key, known());
      it->set(v);
    }
  }
  std::vector<SettingInfo> info() const {
    std::vector<SettingInfo> out;
    for (const auto& f : fields_) out.push_back({f.key, f.get(), f.description});
    return out;
  }

 private:
  std::string known() const {
    std::string s;
    for (const auto& f : fields_) append_listed(s, f.key, ", ");
    return s;
  }
  std::vector<Field> fields_;
};

void add_run_fields(Fields& f, RunSettings& s) {
  f.add("num_warmup", s.num_warmup, "warm-up (adaptation) iterations, not stored")
      .add("num_draws", s.num_draws, "stored iterations per chain")
      .add("keep_warmup", s.keep_warmup, "also store warm-up draws")
      .add("store_proposals", s.store_proposals, "store proposals Y_{t+1} (control variates)")
      .add("store_gradients", s.store_gradients, "store gradients at X_t (ZV control variates)");
}

// ---- samplers -------------------------------------------------------------------------------

void bind(Fields& f, RwmSettings& s) {
  add_run_fields(f, s);
  f.add("step_size", s.step_size, "initial scale eps (0 = 2.38/sqrt(d))")
      .add("adapt_step_size", s.adapt_step_size, "dual-average eps during warm-up")
      .add("target_accept", s.target_accept, "acceptance rate the adaptation aims at")
      .add("adapt_covariance", s.adapt_covariance, "learn the proposal covariance in warm-up")
      .add("dense", s.dense, "dense (true) or diagonal covariance")
      .add("cov", s.cov, "initial/fixed proposal covariance, rows separated by ';'");
}

void bind(Fields& f, MalaSettings& s) {
  add_run_fields(f, s);
  f.add("step_size", s.step_size, "initial step h (0 = d^(-1/3))")
      .add("adapt_step_size", s.adapt_step_size, "dual-average h during warm-up")
      .add("target_accept", s.target_accept, "acceptance rate the adaptation aims at");
}

void bind(Fields& f, PmalaSettings& s) {
  add_run_fields(f, s);
  f.add("step_size", s.step_size, "initial step h (0 = d^(-1/3))")
      .add("adapt_step_size", s.adapt_step_size, "dual-average h during warm-up")
      .add("target_accept", s.target_accept, "acceptance rate the adaptation aims at")
      .add_choice("preconditioner", s.preconditioner,
                  {"covariance", "fisher", "reference", "laplace", "none"},
                  "preconditioner adaptation")
      .add("dense", s.dense, "dense (true) or diagonal preconditioner")
      .add("laplace_init", s.laplace_init, "start the adapted preconditioner at the Laplace cov")
      .add("sigma", s.sigma, "initial/fixed preconditioner, rows separated by ';'");
}

void bind(Fields& f, GiMalaSettings& s) {
  add_run_fields(f, s);
  f.add("gamma", s.gamma, "initial/fixed gamma in (0, 2)")
      .add("adapt_gamma", s.adapt_gamma, "adapt gamma towards target_accept in warm-up")
      .add("gamma_max", s.gamma_max, "upper end of the gamma adaptation, < 2")
      .add("target_accept", s.target_accept, "acceptance rate the gamma adaptation aims at")
      .add_choice("sigma_adaptation", s.sigma_adaptation,
                  {"covariance", "fisher", "reference", "laplace", "none"},
                  "how Sigma is learned in warm-up")
      .add("dense", s.dense, "dense (true) or diagonal Sigma")
      .add("laplace_init", s.laplace_init, "start the adapted Sigma at the Laplace covariance")
      .add("sigma", s.sigma, "initial/fixed Sigma, rows separated by ';'")
      .add("mu", s.mu, "Gaussian mean for control variates (default: adapted)");
}

void bind(Fields& f, GiMala2Settings& s) {
  add_run_fields(f, s);
  f.add("gamma", s.gamma, "initial/fixed gamma in (0, 2)")
      .add("adapt_gamma", s.adapt_gamma, "adapt gamma towards target_accept in warm-up")
      .add("gamma_max", s.gamma_max, "upper end of the gamma adaptation, < 2")
      .add("target_accept", s.target_accept, "acceptance rate the gamma adaptation aims at")
      .add("metric_floor", s.metric_floor, "eigenvalue floor of -Hessian")
      .add("mu", s.mu, "Gaussian mean for control variates (default: adapted)");
}

void bind(Fields& f, MmalaSettings& s) {
  add_run_fields(f, s);
  f.add("step_size", s.step_size, "initial/fixed step h")
      .add("adapt_step_size", s.adapt_step_size, "dual-average h during warm-up")
      .add("target_accept", s.target_accept, "acceptance rate the adaptation aims at")
      .add("metric_floor", s.metric_floor, "eigenvalue floor of -Hessian");
}

void bind(Fields& f, GiRwmSettings& s) {
  add_run_fields(f, s);
  f.add("gamma", s.gamma, "initial/fixed gamma in (0, 2)")
      .add("adapt_gamma", s.adapt_gamma, "adapt gamma towards target_accept in warm-up")
      .add("gamma_max", s.gamma_max, "upper end of the gamma adaptation, < 2")
      .add("target_accept", s.target_accept, "acceptance rate the gamma adaptation aims at")
      .add("adapt_gaussian", s.adapt_gaussian, "learn (mu, Sigma) in warm-up")
      .add("laplace_init", s.laplace_init, "start (mu, Sigma) at the Laplace approximation")
      .add("dense", s.dense, "dense (true) or diagonal Sigma")
      .add("sigma_scale", s.sigma_scale, "inflation of the Laplace/adapted Sigma (heavy tails)")
      .add("mu", s.mu, "initial/fixed mu (default: Laplace mode or initial point)")
      .add("sigma", s.sigma, "initial/fixed Sigma, rows separated by ';' (default I)");
}

void bind(Fields& f, PcnSettings& s) {
  add_run_fields(f, s);
  f.add("beta", s.beta, "initial/fixed beta in (0, 1]")
      .add("adapt_beta", s.adapt_beta, "adapt beta towards target_accept in warm-up")
      .add("target_accept", s.target_accept, "acceptance rate the adaptation aims at")
      .add("mean", s.mean, "reference mean (default: the target's Gaussian reference)")
      .add("cov", s.cov, "reference covariance (default: the target's Gaussian reference)");
}

void bind(Fields& f, ImhSettings& s) {
  add_run_fields(f, s);
  f.add_choice("proposal", s.proposal, {"gaussian", "t"}, "proposal family")
      .add("nu", s.nu, "Student-t degrees of freedom (> 2)")
      .add("mean", s.mean, "proposal mean (default: Laplace mode)")
      .add("cov", s.cov, "proposal covariance (default: Laplace covariance)");
}

void bind(Fields& f, AimhSettings& s) {
  add_run_fields(f, s);
  f.add_choice("proposal", s.proposal, {"gaussian", "t"}, "proposal family")
      .add("nu", s.nu, "Student-t degrees of freedom (> 2)")
      .add("laplace_init", s.laplace_init, "start at the Laplace approximation")
      .add("cov_scale", s.cov_scale, "inflation of the moment-matched covariance")
      .add("warmup_local", s.warmup_local, "probability of a local MALA move in warm-up")
      .add("local_accept", s.local_accept, "acceptance rate the local warm-up moves aim at")
      .add("dense", s.dense, "dense (true) or diagonal covariance")
      .add("mean", s.mean, "initial proposal mean")
      .add("cov", s.cov, "initial proposal covariance");
}

void bind(Fields& f, NutsSettings& s) {
  add_run_fields(f, s);
  f.add("step_size", s.step_size, "initial step size")
      .add("adapt_step_size", s.adapt_step_size, "dual-average the step size in warm-up")
      .add("target_accept", s.target_accept, "Stan's adapt_delta")
      .add("max_depth", s.max_depth, "maximum tree depth")
      .add_choice("metric", s.metric, {"unit", "diag", "dense"}, "Euclidean metric")
      .add("adapt_metric", s.adapt_metric, "learn the inverse metric in Stan's windows")
      .add("inv_metric", s.inv_metric, "initial/fixed inverse metric, rows separated by ';'")
      .add("max_delta_h", s.max_delta_h, "divergence threshold on the energy error");
}

struct SamplerEntry {
  std::string name;
  std::function<std::vector<SettingInfo>()> info;
  std::function<void(const KeyValues&)> validate;
  std::function<Chain(const AnyTarget&, const Eigen::VectorXd&, const KeyValues&, Rng&, Progress*)>
      run;
};

/// `defaults` are applied before the user's settings (e.g. imh-t = imh with proposal=t).
template <class Settings, class Fn>
SamplerEntry make_entry(std::string name, Fn fn, KeyValues defaults = {}) {
  SamplerEntry e;
  e.name = name;
  e.info = [name, defaults] {
    Settings s;
    Fields f;
    bind(f, s);
    f.apply(defaults, "sampler " + name);
    return f.info();
  };
  e.validate = [name, defaults](const KeyValues& kv) {
    Settings s;
    Fields f;
    bind(f, s);
    f.apply(defaults, "sampler " + name);
    f.apply(kv, "sampler " + name);
  };
  e.run = [name, fn, defaults](const AnyTarget& t, const Eigen::VectorXd& init, const KeyValues& kv,
                               Rng& rng, Progress* progress) {
    Settings s;
    Fields f;
    bind(f, s);
    f.apply(defaults, "sampler " + name);
    f.apply(kv, "sampler " + name);
    s.progress = progress;
    Chain c = fn(t, init, s, rng);
    c.sampler = name;
    return c;
  };
  return e;
}

const std::vector<SamplerEntry>& sampler_table() {
  static const std::vector<SamplerEntry> table = [] {
    std::vector<SamplerEntry> t;
#define SIEVE_MCMC_ENTRY(NAME, SETTINGS, FN, ...)                                         \
  t.push_back(make_entry<SETTINGS>(                                                       \
      NAME, [](const AnyTarget& a, const Eigen::VectorXd& x, const SETTINGS& s, Rng& r) { \
        return FN(a, x, s, r);                                                            \
      } __VA_OPT__(, ) __VA_ARGS__))
    SIEVE_MCMC_ENTRY("gi-mala", GiMalaSettings, gi_mala);
    SIEVE_MCMC_ENTRY("gi-rwm", GiRwmSettings, gi_rwm);
    SIEVE_MCMC_ENTRY("gi-mala2", GiMala2Settings, gi_mala2);
    SIEVE_MCMC_ENTRY("rwm", RwmSettings, rwm);
    SIEVE_MCMC_ENTRY("mala", MalaSettings, mala);
    SIEVE_MCMC_ENTRY("pmala", PmalaSettings, pmala);
    SIEVE_MCMC_ENTRY("mmala", MmalaSettings, mmala);
    SIEVE_MCMC_ENTRY("pcn", PcnSettings, pcn);
    SIEVE_MCMC_ENTRY("imh", ImhSettings, imh);
    SIEVE_MCMC_ENTRY("imh-t", ImhSettings, imh, KeyValues{{"proposal", "t"}});
    SIEVE_MCMC_ENTRY("aimh", AimhSettings, aimh);
    SIEVE_MCMC_ENTRY("nuts", NutsSettings, nuts);
#undef SIEVE_MCMC_ENTRY
    return t;
  }();
  return table;
}

const SamplerEntry& find_sampler(std::string_view name) {
  for (const auto& e : sampler_table())
    if (e.name == name) return e;
  std::string all;
  for (const auto& e : sampler_table()) append_listed(all, e.name, ", ");
  SIEVE_FAIL("unknown sampler '{}' (known: {})", name, all);
}

// ---- models ---------------------------------------------------------------------------------

struct ModelEntry {
  std::string name;
  std::function<std::vector<SettingInfo>()> info;
  std::function<AnyTarget(const KeyValues&, const ModelData*)> make;
};

struct GaussianModelSettings {
  int64_t dim = 2;
  Eigen::VectorXd mean;
  Eigen::MatrixXd cov;
};
void bind(Fields& f, GaussianModelSettings& s) {
  f.add("dim", s.dim, "dimension (used when mean is not given)")
      .add("mean", s.mean, "mean vector (default 0)")
      .add("cov", s.cov, "covariance, rows separated by ';' (default I)");
}

struct IllGaussianSettings {
  int64_t dim = 100;
  double condition_number = 1e4;
  bool rotate = false;
  int64_t seed = 1;
};
void bind(Fields& f, IllGaussianSettings& s) {
  f.add("dim", s.dim, "dimension")
      .add("condition_number", s.condition_number, "max/min variance")
      .add("rotate", s.rotate, "rotate by a fixed random orthogonal matrix")
      .add("seed", s.seed, "seed of the rotation");
}

struct LogisticModelSettings {
  double prior_sd = 10.0;
};
void bind(Fields& f, LogisticModelSettings& s) {
  f.add("prior_sd", s.prior_sd, "sd of the N(0, prior_sd^2 I) prior on the coefficients");
}

struct LinregModelSettings {
  std::string prior = "student-t";
  double prior_scale = 1.0, nu = 3.0, noise_sd = 1.0, temperature = 1.0;
  int64_t n = 50, p = 3, seed = 1;
  double shift = 3.0;
};
void bind(Fields& f, LinregModelSettings& s) {
  f.add_choice("prior", s.prior, {"student-t", "laplace", "gaussian"}, "prior on each coefficient")
      .add("prior_scale", s.prior_scale, "prior scale")
      .add("nu", s.nu, "Student-t degrees of freedom")
      .add("noise_sd", s.noise_sd, "known noise sd")
      .add("temperature", s.temperature, "power-posterior temperature in [0, 1]")
      .add("n", s.n, "synthetic data: observations")
      .add("p", s.p, "synthetic data: coefficients")
      .add("shift", s.shift, "synthetic data: true coefficients (prior conflict when large)")
      .add("seed", s.seed, "synthetic data: seed");
}

struct GpModelSettings {
  double prior_mean = 0.0, prior_sd = 1.5;
  int64_t n = 30, seed = 1;
};
void bind(Fields& f, GpModelSettings& s) {
  f.add("prior_mean", s.prior_mean, "mean of the normal prior on each log hyperparameter")
      .add("prior_sd", s.prior_sd, "sd of the normal prior on each log hyperparameter")
      .add("n", s.n, "synthetic data: observations")
      .add("seed", s.seed, "synthetic data: seed");
}

struct LgcpModelSettings {
  int64_t grid = 32, seed = 1;
  double sigma2 = 1.91, beta = 1.0 / 33.0;
};
void bind(Fields& f, LgcpModelSettings& s) {
  f.add("grid", s.grid, "grid side (dimension grid^2)")
      .add("sigma2", s.sigma2, "prior variance")
      .add("beta", s.beta, "prior correlation length (in units of the domain)")
      .add("seed", s.seed, "seed of the synthetic counts");
}

struct BananaModelSettings {
  int64_t dim = 2;
  double b = 0.03;
};
void bind(Fields& f, BananaModelSettings& s) {
  f.add("dim", s.dim, "dimension (>= 2)").add("b", s.b, "curvature");
}

struct FunnelModelSettings {
  int64_t dim = 10;
};
void bind(Fields& f, FunnelModelSettings& s) { f.add("dim", s.dim, "dimension (>= 2)"); }

template <class Settings, class Fn>
ModelEntry make_model_entry(std::string name, Fn fn) {
  ModelEntry e;
  e.name = name;
  e.info = [] {
    Settings s;
    Fields f;
    bind(f, s);
    return f.info();
  };
  e.make = [name, fn](const KeyValues& kv, const ModelData* data) {
    Settings s;
    Fields f;
    bind(f, s);
    f.apply(kv, "model " + name);
    return fn(s, data);
  };
  return e;
}

const std::vector<ModelEntry>& model_table() {
  static const std::vector<ModelEntry> table = [] {
    std::vector<ModelEntry> t;
    t.push_back(make_model_entry<GaussianModelSettings>(
        "gaussian", [](const GaussianModelSettings& s, const ModelData*) -> AnyTarget {
          const Eigen::Index d = s.mean.size()  ? s.mean.size()
                                 : s.cov.size() ? s.cov.rows()
                                                : s.dim;
          SIEVE_CHECK(d > 0, "model gaussian: dim must be positive");
          Eigen::VectorXd m = s.mean.size() ? s.mean : Eigen::VectorXd::Zero(d);
          Eigen::MatrixXd c = s.cov.size() ? s.cov : Eigen::MatrixXd::Identity(d, d);
          return Gaussian(m, c);
        }));
    t.push_back(make_model_entry<IllGaussianSettings>(
        "ill-gaussian", [](const IllGaussianSettings& s, const ModelData*) -> AnyTarget {
          return ill_conditioned_gaussian(s.dim, s.condition_number, s.rotate, uint64_t(s.seed));
        }));
    t.push_back(make_model_entry<BananaModelSettings>(
        "banana", [](const BananaModelSettings& s, const ModelData*) -> AnyTarget {
          return Banana(s.dim, s.b);
        }));
    t.push_back(make_model_entry<FunnelModelSettings>(
        "funnel",
        [](const FunnelModelSettings& s, const ModelData*) -> AnyTarget { return Funnel(s.dim); }));
    t.push_back(make_model_entry<LogisticModelSettings>(
        "logistic", [](const LogisticModelSettings& s, const ModelData* data) -> AnyTarget {
          SIEVE_CHECK(data != nullptr, "model logistic needs data (--data FILE.csv)");
          return LogisticRegression(data->X, data->y, s.prior_sd, data->column_names);
        }));
    t.push_back(make_model_entry<LinregModelSettings>(
        "linreg", [](const LinregModelSettings& s, const ModelData* data) -> AnyTarget {
          RegressionPrior prior;
          prior.kind = s.prior == "gaussian"  ? PriorKind::kGaussian
                       : s.prior == "laplace" ? PriorKind::kLaplace
                                              : PriorKind::kStudentT;
          prior.scale = s.prior_scale;
          prior.nu = s.nu;
          if (data) return LinearRegression(data->X, data->y, s.noise_sd, prior, s.temperature);
          Eigen::MatrixXd X;
          Eigen::VectorXd y;
          linear_regression_synthetic(s.n, s.p, s.shift, s.noise_sd, uint64_t(s.seed), X, y);
          return LinearRegression(X, y, s.noise_sd, prior, s.temperature);
        }));
    t.push_back(make_model_entry<GpModelSettings>(
        "gp", [](const GpModelSettings& s, const ModelData* data) -> AnyTarget {
          if (data) return GpRegression(data->X, data->y, s.prior_mean, s.prior_sd);
          Eigen::MatrixXd X;
          Eigen::VectorXd y;
          gp_regression_synthetic(s.n, uint64_t(s.seed), X, y);
          return GpRegression(X, y, s.prior_mean, s.prior_sd);
        }));
    t.push_back(make_model_entry<LgcpModelSettings>(
        "lgcp", [](const LgcpModelSettings& s, const ModelData* data) -> AnyTarget {
          LgcpSettings ls;
          ls.grid = int(s.grid);
          ls.sigma2 = s.sigma2;
          ls.beta = s.beta;
          Eigen::VectorXd counts;
          if (data) counts = data->y;
          return LogGaussianCoxProcess(ls, counts, uint64_t(s.seed));
        }));
    return t;
  }();
  return table;
}

const ModelEntry& find_model(std::string_view name) {
  for (const auto& e : model_table())
    if (e.name == name) return e;
  std::string all;
  for (const auto& e : model_table()) append_listed(all, e.name, ", ");
  SIEVE_FAIL("unknown model '{}' (known: {})", name, all);
}

int64_t setting_int(const KeyValues& kv, const std::string& key, int64_t fallback) {
  int64_t v = fallback;
  for (const auto& [k, val] : kv)
    if (trim(k) == key) v = parse_int(key, val);
  return v;
}

}  // namespace

std::pair<std::string, std::string> parse_key_value(std::string_view text) {
  const size_t eq = text.find('=');
  SIEVE_CHECK(eq != std::string_view::npos && eq > 0, "expected key=value, got '{}'", text);
  return {trim(text.substr(0, eq)), trim(text.substr(eq + 1))};
}

std::vector<std::string> sampler_names() {
  std::vector<std::string> names;
  for (const auto& e : sampler_table()) names.push_back(e.name);
  return names;
}

std::vector<SettingInfo> sampler_settings(std::string_view sampler) {
  return find_sampler(sampler).info();
}

Chain run_sampler(std::string_view name, const AnyTarget& target, const Eigen::VectorXd& init,
                  const KeyValues& settings, Rng& rng) {
  SIEVE_CHECK(!target.empty(), "run_sampler: empty target");
  return find_sampler(name).run(target, init, settings, rng, nullptr);
}

std::vector<Chain> run_chains(std::string_view name, const AnyTarget& target,
                              const KeyValues& settings, const MultiChainOptions& options) {
  SIEVE_CHECK(!target.empty(), "run_chains: empty target");
  const SamplerEntry& entry = find_sampler(name);
  // Validate the settings once, before starting threads, so errors are reported cleanly.
  entry.validate(settings);
  if (options.init)
    SIEVE_CHECK(options.init->size() == target.dim(), "init has {} entries, target dimension is {}",
                options.init->size(), target.dim());
  SIEVE_CHECK(options.init_radius > 0, "init_radius must be positive");
  const int64_t per_chain = setting_int(settings, "num_warmup", RunSettings{}.num_warmup) +
                            setting_int(settings, "num_draws", RunSettings{}.num_draws);
  std::unique_ptr<Progress> progress;
  if (options.progress && Progress::enabled())
    progress = std::make_unique<Progress>(fmt::format("{} x{}", name, options.num_chains),
                                          per_chain * options.num_chains);
  auto chains =
      run_chains(options.num_chains, options.seed, options.num_threads, [&](uint64_t, Rng& rng) {
        const Eigen::VectorXd init =
            options.init ? *options.init : detail::random_init(target, options.init_radius, rng);
        return entry.run(target, init, settings, rng, progress.get());
      });
  if (progress) progress->finish();
  return chains;
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& e : model_table()) names.push_back(e.name);
  return names;
}

std::vector<SettingInfo> model_settings(std::string_view model) { return find_model(model).info(); }

AnyTarget make_model(std::string_view name, const KeyValues& settings, const ModelData* data) {
  return find_model(name).make(settings, data);
}

}  // namespace sieve::mcmc
