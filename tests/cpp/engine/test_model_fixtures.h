// Shared helpers of the engine tests: paths of the transformers fixtures (tests/data/engine, made
// by scripts/make_engine_fixtures.py) and their reference logits / greedy continuations.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "sieve/core/safetensors.h"
#include "sieve/core/tensor.h"

namespace sieve::test {

inline std::string engine_data(const std::string& name) {
  return std::string(SIEVE_SOURCE_DIR) + "/tests/data/engine/" + name;
}

struct EngineReference {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int32_t> greedy_0, greedy_1;
  std::vector<float> logits_0, logits_1;  // [rows, vocab] row-major
  int64_t vocab = 0;
};

inline EngineReference load_reference(const std::string& name) {
  EngineReference r;
  std::ifstream in(engine_data(name + ".ref.json"));
  std::stringstream ss;
  ss << in.rdbuf();
  const auto j = nlohmann::json::parse(ss.str());
  for (const auto& p : j.at("prompts")) r.prompts.push_back(p.get<std::vector<int32_t>>());
  r.greedy_0 = j.at("greedy_0").get<std::vector<int32_t>>();
  r.greedy_1 = j.at("greedy_1").get<std::vector<int32_t>>();
  SafetensorsFile f(engine_data(name + ".ref.safetensors"));
  for (auto [key, dst] : {std::pair{"logits_0", &r.logits_0}, std::pair{"logits_1", &r.logits_1}}) {
    const TensorView v = f.view(key);
    r.vocab = v.size(1);
    dst->resize(size_t(v.numel()));
    for (int64_t i = 0; i < v.size(0); ++i) {
      for (int64_t c = 0; c < v.size(1); ++c) (*dst)[size_t(i * v.size(1) + c)] = v.get(i, c);
    }
  }
  return r;
}

/// max_j |got_j - want_j| / max_j |want_j| over one row of logits.
inline double row_rel_error(const float* got, const float* want, int64_t n) {
  double err = 0, scale = 0;
  for (int64_t j = 0; j < n; ++j) {
    err = std::max(err, std::fabs(double(got[j]) - double(want[j])));
    scale = std::max(scale, std::fabs(double(want[j])));
  }
  return err / std::max(scale, 1e-30);
}

/// Logits must match the transformers reference within this relative error (f32 engine vs the
/// f64 reference on the same stored weights).
inline constexpr double kLogitsRel = 1e-4;

}  // namespace sieve::test
