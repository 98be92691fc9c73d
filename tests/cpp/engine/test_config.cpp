// config.json parsing for the Llama family (both transformers 4 and 5 layouts), RoPE frequency
// scaling against closed forms, and parameter counts against the fixtures' tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "sieve/engine/config.h"
#include "sieve/engine/rope.h"
#include "sieve/engine/weights.h"
#include "test_model_fixtures.h"

namespace sieve::engine {
namespace {

using test::engine_data;

std::string error_of(const std::string& json) {
  try {
    parse_model_config(json, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A Llama-3.2-1B style config in the transformers 4 layout (top-level rope_theta, rope_scaling).
const char* kLlama32 = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
  "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
  "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0, "tie_word_embeddings": true, "max_position_embeddings": 131072,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu"})";

TEST(ModelConfig, TransformersFourLayout) {
  const ModelConfig c = parse_model_config(kLlama32);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.group_size(), 4);
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_EQ(c.rope.scaling, RopeScaling::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope.factor, 32.0);
  EXPECT_EQ(c.rope.original_max_position, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_FALSE(c.qkv_bias);
  // Llama-3.2-1B has 1.236e9 parameters with tied embeddings.
  EXPECT_EQ(c.num_parameters(), 1235814400);
}

TEST(ModelConfig, TransformersFiveRopeParameters) {
  // The layout of ../shared/data/codelm-b/config.json (transformers 5.17), written inline.
  const ModelConfig c = parse_model_config(R"({
    "architectures": ["LlamaForCausalLM"], "head_dim": 64, "hidden_size": 384,
    "intermediate_size": 1024, "num_attention_heads": 6, "num_hidden_layers": 6,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-05, "model_type": "llama",
    "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
    "tie_word_embeddings": true, "vocab_size": 4096, "bos_token_id": 0, "eos_token_id": 0})");
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_EQ(c.rope.scaling, RopeScaling::kNone);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.summary(), "llama: 6 layers, hidden 384, heads 6/2 x 64, mlp 1024, vocab 4096, "
                         "rope theta 500000, tied embeddings");
}

TEST(ModelConfig, QwenAndMistralFeatures) {
  const ModelConfig q2 = parse_model_config(R"({"architectures": ["Qwen2ForCausalLM"],
    "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "rope_theta": 1000000.0,
    "sliding_window": 32768, "use_sliding_window": false, "max_window_layers": 21,
    "tie_word_embeddings": true})");
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.o_bias);
  EXPECT_EQ(q2.layer_window, std::vector<int64_t>(24, 0));
  EXPECT_EQ(q2.num_parameters(), 494032768);  // Qwen2.5-0.5B
  const ModelConfig q2w = parse_model_config(R"({"model_type": "qwen2", "vocab_size": 10,
    "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 4, "num_attention_heads": 2,
    "sliding_window": 16, "use_sliding_window": true, "max_window_layers": 2})");
  EXPECT_EQ(q2w.layer_window, (std::vector<int64_t>{0, 0, 16, 16}));
  const ModelConfig q3 = parse_model_config(R"({"architectures": ["Qwen3ForCausalLM"],
    "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "rope_theta": 1000000,
    "tie_word_embeddings": true, "attention_bias": false})");
  EXPECT_EQ(q3.head_dim, 128);  // explicit, != 1024 / 16
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_EQ(q3.num_parameters(), 596049920);  // Qwen3-0.6B
  const ModelConfig mi = parse_model_config(R"({"architectures": ["MistralForCausalLM"],
    "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 2,
    "num_attention_heads": 32, "num_key_value_heads": 8, "sliding_window": 4096,
    "rope_scaling": {"type": "linear", "factor": 4.0}})");
  EXPECT_EQ(mi.layer_window, (std::vector<int64_t>{4096, 4096}));
  EXPECT_EQ(mi.rope.scaling, RopeScaling::kLinear);
  EXPECT_DOUBLE_EQ(mi.rope.factor, 4.0);
  const ModelConfig lt = parse_model_config(R"({"model_type": "qwen3", "vocab_size": 10,
    "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
    "sliding_window": 5, "layer_types": ["sliding_attention", "full_attention"]})");
  EXPECT_EQ(lt.layer_window, (std::vector<int64_t>{5, 0}));
}

TEST(ModelConfig, ClearErrors) {
  EXPECT_NE(error_of(R"({"architectures": ["GPT2LMHeadModel"], "vocab_size": 5})").find("GPT2LMHeadModel"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model_type": "falcon"})").find("falcon"), std::string::npos);
  const std::string base = R"("architectures": ["LlamaForCausalLM"], "vocab_size": 10,
    "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2)";
  EXPECT_EQ(error_of("{" + base + "}"), "");
  EXPECT_NE(error_of("{" + base + R"(, "rope_scaling": {"rope_type": "yarn", "factor": 4})" + "}").find("yarn"),
            std::string::npos);
  EXPECT_NE(error_of("{" + base + R"(, "num_key_value_heads": 3})").find("multiple"), std::string::npos);
  EXPECT_NE(error_of("{" + base + R"(, "hidden_act": "gelu"})").find("gelu"), std::string::npos);
  EXPECT_NE(error_of("{" + base + R"(, "partial_rotary_factor": 0.5})").find("partial_rotary_factor"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10})").find("hidden_size"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": "ten"})").find("vocab_size"),
            std::string::npos);
  EXPECT_NE(error_of("{ not json").find("invalid JSON"), std::string::npos);
  EXPECT_NE(error_of("{" + base + R"(, "eos_token_id": 99})").find("eos_token_id"), std::string::npos);
  EXPECT_THROW(load_model_config("/nonexistent/model/dir"), Error);
}

TEST(ModelConfig, ParameterCountEqualsFixtureTensors) {
  for (const char* name : {"llama", "qwen2", "qwen3", "mistral"}) {
    const ModelConfig c = load_model_config(engine_data(name));
    const WeightStore w(engine_data(name));
    int64_t total = 0;
    for (const auto& n : w.names()) {
      // Sizes from the file headers, independent of the config arithmetic.
      const auto& files = w.files();
      for (const auto& f : files) {
        SafetensorsFile st(f);
        if (st.contains(n)) {
          int64_t numel = 1;
          for (int64_t s : st.at(n).shape) numel *= s;
          total += numel;
        }
      }
    }
    EXPECT_EQ(c.num_parameters(), total) << name;
  }
}

// Closed forms written from the definitions (f64): default, linear and llama3 frequencies.
TEST(Rope, InverseFrequenciesMatchClosedForms) {
  RopeConfig r;
  r.theta = 500000.0;
  const int64_t d = 64;
  auto base = [&](int64_t i) { return std::pow(r.theta, -double(2 * i) / double(d)); };
  auto inv = rope_inv_freq(r, d);
  for (int64_t i = 0; i < d / 2; ++i) EXPECT_NEAR(inv[size_t(i)], base(i), 2e-7 * base(i));

  r.scaling = RopeScaling::kLinear;
  r.factor = 4.0;
  inv = rope_inv_freq(r, d);
  for (int64_t i = 0; i < d / 2; ++i) EXPECT_NEAR(inv[size_t(i)], base(i) / 4, 2e-7 * base(i));

  r.scaling = RopeScaling::kLlama3;
  r.factor = 32.0;
  r.low_freq_factor = 1.0;
  r.high_freq_factor = 4.0;
  r.original_max_position = 8192;
  inv = rope_inv_freq(r, d);
  int low = 0, mid = 0, high = 0;
  for (int64_t i = 0; i < d / 2; ++i) {
    const double f = base(i), wavelen = 2 * std::numbers::pi / f;
    double want;
    if (wavelen < 8192.0 / 4.0) {
      want = f, ++high;
    } else if (wavelen > 8192.0 / 1.0) {
      want = f / 32.0, ++low;
    } else {
      const double s = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - s) * f / 32.0 + s * f, ++mid;
    }
    EXPECT_NEAR(inv[size_t(i)], want, 1e-6 * want) << "i = " << i;
  }
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
  EXPECT_GT(high, 0);
}

TEST(Rope, RotationPreservesNormAndIsRelative) {
  RopeConfig r;
  const auto inv = rope_inv_freq(r, 8);
  std::vector<float> q = {0.3f, -1.0f, 2.0f, 0.5f, 1.5f, 0.25f, -0.75f, 1.0f}, k = {1, 2, 3, 4, 5, 6, 7, 8};
  auto dot_at = [&](int64_t pq, int64_t pk) {
    auto a = q, b = k;
    apply_rope(a.data(), 1, 8, pq, inv);
    apply_rope(b.data(), 1, 8, pk, inv);
    double s = 0, na = 0, nq = 0;
    for (int i = 0; i < 8; ++i) s += a[i] * b[i], na += a[i] * a[i], nq += q[i] * q[i];
    EXPECT_NEAR(na, nq, 1e-5 * nq);
    return s;
  };
  EXPECT_NEAR(dot_at(7, 3), dot_at(104, 100), 1e-3);  // depends on pq - pk only
}

}  // namespace
}  // namespace sieve::engine
