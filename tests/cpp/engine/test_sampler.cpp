// Sampling: the kept sets of top-k / top-p / min-p, the repetition penalty and temperature are
// checked against independent f64 computations on small vocabularies; draws against the
// distribution with a chi-square test (fixed seed, so deterministic).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sieve/core/error.h"
#include "sieve/engine/sampler.h"

namespace sieve::engine {
namespace {

std::vector<double> softmax(const std::vector<double>& l) {
  const double mx = *std::max_element(l.begin(), l.end());
  std::vector<double> p(l.size());
  double s = 0;
  for (size_t i = 0; i < l.size(); ++i) s += p[i] = std::isinf(l[i]) ? 0.0 : std::exp(l[i] - mx);
  for (auto& v : p) v /= s;
  return p;
}

// Renormalised distribution restricted to `keep` (f64), from logits / temperature.
std::vector<double> restricted(const std::vector<float>& logits, double temp,
                               const std::vector<int>& keep) {
  std::vector<double> l(logits.size(), -INFINITY);
  for (int i : keep) l[size_t(i)] = double(logits[size_t(i)]) / temp;
  return softmax(l);
}

void expect_dist(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (want[i] == 0) {
      EXPECT_EQ(got[i], 0.0f) << "token " << i << " must be cut";
    } else {
      EXPECT_NEAR(got[i], want[i], 1e-6) << "token " << i;
    }
  }
}

const std::vector<float> kLogits = {1.0f, 3.0f, -0.5f, 2.5f, 0.2f, 2.9f, -2.0f, 1.7f};

TEST(Sampler, GreedyIsArgmaxLowestIdOnTies) {
  SamplerConfig c;
  Sampler s(c);
  EXPECT_EQ(s.sample(kLogits), 1);
  const std::vector<float> ties = {0.5f, 2.0f, 2.0f, -1.0f};
  EXPECT_EQ(s.sample(ties), 1);
  EXPECT_EQ(argmax(ties), 1);
  const std::vector<float> with_nan = {NAN, 0.1f, 0.3f};
  EXPECT_EQ(argmax(with_nan), 2);
  const auto d = s.distribution(kLogits);
  EXPECT_EQ(d[1], 1.0f);
  EXPECT_EQ(std::accumulate(d.begin(), d.end(), 0.0f), 1.0f);
}

TEST(Sampler, TemperatureOnly) {
  SamplerConfig c;
  c.temperature = 0.7f;
  expect_dist(Sampler(c).distribution(kLogits), restricted(kLogits, 0.7, {0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(Sampler, TopKKeepsExactlyTheKLargest) {
  SamplerConfig c;
  c.temperature = 1.3f;
  c.top_k = 3;  // 3.0 (1), 2.9 (5), 2.5 (3)
  expect_dist(Sampler(c).distribution(kLogits), restricted(kLogits, 1.3, {1, 5, 3}));
  c.top_k = 100;  // larger than the vocabulary: everything
  expect_dist(Sampler(c).distribution(kLogits), restricted(kLogits, 1.3, {0, 1, 2, 3, 4, 5, 6, 7}));
}

// Independent top-p: sort descending, keep the smallest prefix whose mass reaches p.
std::vector<int> nucleus(const std::vector<float>& logits, double temp, double p) {
  std::vector<double> l;
  for (float v : logits) l.push_back(double(v) / temp);
  const auto prob = softmax(l);
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return prob[size_t(a)] > prob[size_t(b)]; });
  std::vector<int> keep;
  double mass = 0;
  for (int i : order) {
    keep.push_back(i);
    mass += prob[size_t(i)];
    if (mass >= p) break;
  }
  return keep;
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  for (float p : {0.05f, 0.3f, 0.5f, 0.75f, 0.9f, 0.99f}) {
    SamplerConfig c;
    c.temperature = 0.9f;
    c.top_p = p;
    const auto keep = nucleus(kLogits, 0.9, p);
    expect_dist(Sampler(c).distribution(kLogits), restricted(kLogits, 0.9, keep));
  }
}

TEST(Sampler, MinPKeepsTokensAboveAFractionOfTheTop) {
  SamplerConfig c;
  c.temperature = 1.0f;
  c.min_p = 0.5f;  // keep p_i >= 0.5 p_max  <=>  l_i >= l_max + ln 0.5 = 3 - 0.693
  expect_dist(Sampler(c).distribution(kLogits), restricted(kLogits, 1.0, {1, 3, 5}));
  c.min_p = 0.2f;  // l_i >= 3 - 1.609 = 1.39
  expect_dist(Sampler(c).distribution(kLogits), restricted(kLogits, 1.0, {1, 3, 5, 7}));
}

TEST(Sampler, StepsComposeInOrder) {
  // top-k 5 -> {1, 5, 3, 7, 0}; then top-p 0.8 on those; then min-p 0.3 on what is left.
  SamplerConfig c;
  c.temperature = 1.0f;
  c.top_k = 5;
  c.top_p = 0.8f;
  c.min_p = 0.3f;
  std::vector<float> k5(kLogits.size(), -INFINITY);
  for (int i : {1, 5, 3, 7, 0}) k5[size_t(i)] = kLogits[size_t(i)];
  const auto after_p = nucleus(k5, 1.0, 0.8);  // {1, 5, 3}: 0.333+0.301+0.202 >= 0.8
  std::vector<double> lp(kLogits.size(), -INFINITY);
  for (int i : after_p) lp[size_t(i)] = kLogits[size_t(i)];
  const auto pp = softmax(lp);
  const double top = *std::max_element(pp.begin(), pp.end());
  std::vector<int> keep;
  for (int i : after_p) {
    if (pp[size_t(i)] >= 0.3 * top) keep.push_back(i);
  }
  expect_dist(Sampler(c).distribution(kLogits), restricted(kLogits, 1.0, keep));
}

TEST(Sampler, RepetitionPenaltyCtrlRule) {
  SamplerConfig c;
  c.temperature = 1.0f;
  c.repetition_penalty = 2.0f;
  const std::vector<int32_t> history = {1, 2, 1};
  std::vector<float> pen = kLogits;
  pen[1] = 3.0f / 2.0f;   // positive: divided
  pen[2] = -0.5f * 2.0f;  // negative: multiplied
  expect_dist(Sampler(c).distribution(kLogits, history), restricted(pen, 1.0, {0, 1, 2, 3, 4, 5, 6, 7}));
  // Greedy sees the penalty too: token 1 (3.0 -> 1.5) loses to token 5 (2.9).
  SamplerConfig g;
  g.repetition_penalty = 2.0f;
  EXPECT_EQ(Sampler(g).sample(kLogits, history), 5);
  // A window of 1 only penalises the last token (1).
  c.repetition_window = 1;
  std::vector<float> pen1 = kLogits;
  pen1[1] = 1.5f;
  expect_dist(Sampler(c).distribution(kLogits, history), restricted(pen1, 1.0, {0, 1, 2, 3, 4, 5, 6, 7}));
}

// Chi-square goodness of fit of 40000 draws against the distribution (df = kept - 1).
TEST(Sampler, DrawsFollowTheDistribution) {
  SamplerConfig c;
  c.temperature = 0.8f;
  c.top_k = 6;
  c.seed = 1234;
  Sampler s(c);
  const auto p = s.distribution(kLogits);
  const int n = 40000;
  std::vector<int> count(kLogits.size(), 0);
  for (int i = 0; i < n; ++i) ++count[size_t(s.sample(kLogits))];
  double chi2 = 0;
  int df = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(count[i], 0) << "a cut token was drawn";
      continue;
    }
    const double e = n * double(p[i]);
    chi2 += (count[i] - e) * (count[i] - e) / e;
    ++df;
  }
  ASSERT_EQ(df, 5);
  EXPECT_LT(chi2, 20.52);  // 0.999 quantile of chi-square with 5 degrees of freedom
}

TEST(Sampler, SeedReproducible) {
  SamplerConfig c;
  c.temperature = 1.0f;
  c.seed = 7;
  Sampler a(c), b(c);
  c.seed = 8;
  Sampler other(c);
  std::vector<int32_t> da, db, dother;
  for (int i = 0; i < 200; ++i) {
    da.push_back(a.sample(kLogits));
    db.push_back(b.sample(kLogits));
    dother.push_back(other.sample(kLogits));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dother);
}

TEST(Sampler, InvalidSettingsAndInputsThrow) {
  auto make = [](auto edit) {
    SamplerConfig c;
    c.temperature = 1.0f;
    edit(c);
    return Sampler(c);
  };
  EXPECT_THROW(make([](SamplerConfig& c) { c.top_p = 0.0f; }), Error);
  EXPECT_THROW(make([](SamplerConfig& c) { c.top_p = 1.5f; }), Error);
  EXPECT_THROW(make([](SamplerConfig& c) { c.top_k = -1; }), Error);
  EXPECT_THROW(make([](SamplerConfig& c) { c.min_p = -0.1f; }), Error);
  EXPECT_THROW(make([](SamplerConfig& c) { c.repetition_penalty = 0.0f; }), Error);
  EXPECT_THROW(make([](SamplerConfig& c) { c.temperature = NAN; }), Error);
  Sampler s(SamplerConfig{});
  EXPECT_THROW(s.sample(std::vector<float>{}), Error);
  EXPECT_THROW(s.sample(std::vector<float>{NAN, NAN}), Error);
  SamplerConfig c;
  c.repetition_penalty = 1.2f;
  Sampler pen(c);
  const std::vector<int32_t> bad_history = {9};
  EXPECT_THROW(pen.sample(kLogits, bad_history), Error);
}

}  // namespace
}  // namespace sieve::engine
