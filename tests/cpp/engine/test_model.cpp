// Logits and greedy continuations of the engine against Hugging Face transformers (fixtures made
// by scripts/make_engine_fixtures.py: tiny random-weight Llama / Qwen2 / Qwen3 / Mistral models,
// references from the transformers forward in f64).
#include <gtest/gtest.h>

#include "sieve/engine/generate.h"
#include "sieve/engine/linear.h"
#include "sieve/engine/model.h"
#include "test_model_fixtures.h"

namespace sieve::engine {
namespace {

using test::engine_data;
using test::kLogitsRel;
using test::load_reference;
using test::row_rel_error;

struct FixtureCase {
  const char* name;
  const char* architecture;
};

class ModelFixture : public ::testing::TestWithParam<FixtureCase> {
 protected:
  void SetUp() override {
    // The AVX-512 BF16 path rounds activations to bf16 and has its own, looser test below; the
    // transformers comparison runs the exact paths.
    if (linear_isa_supported(LinearIsa::kAvx2)) set_linear_isa(LinearIsa::kAvx2);
  }
  void TearDown() override { set_linear_isa(LinearIsa::kAuto); }
};

// Prefill of a whole prompt, all rows, through the engine's own attention (blocks < 16 tokens)
// and through the sieve::attention dense executor.
TEST_P(ModelFixture, PrefillLogitsMatchTransformers) {
  const auto ref = load_reference(GetParam().name);
  Model model(engine_data(GetParam().name));
  EXPECT_EQ(model.config().architecture, GetParam().architecture);
  ASSERT_EQ(model.config().vocab_size, ref.vocab);
  for (int64_t min_exec : {int64_t(16), int64_t(1)}) {
    model.set_executor_min_tokens(min_exec);
    for (int p = 0; p < 2; ++p) {
      const auto& prompt = ref.prompts[size_t(p)];
      const auto& want = p == 0 ? ref.logits_0 : ref.logits_1;
      KvCache cache = model.make_cache();
      ForwardInput in;
      in.tokens = prompt;
      in.logits = LogitsMode::kAll;
      const Tensor logits = model.forward(in, cache);
      ASSERT_EQ(logits.size(0), int64_t(prompt.size()));
      EXPECT_EQ(cache.size(), int64_t(prompt.size()));
      for (int64_t i = 0; i < logits.size(0); ++i) {
        const double e = row_rel_error(logits.data_as<float>() + i * ref.vocab,
                                       want.data() + i * ref.vocab, ref.vocab);
        EXPECT_LE(e, kLogitsRel) << GetParam().name << " prompt " << p << " row " << i
                                 << " executor_min_tokens " << min_exec;
      }
    }
  }
}

// Token-by-token decode (KV cache) reproduces every teacher-forced row of prompt + continuation.
TEST_P(ModelFixture, DecodeLogitsMatchTransformers) {
  const auto ref = load_reference(GetParam().name);
  Model model(engine_data(GetParam().name));
  std::vector<int32_t> seq = ref.prompts[0];
  seq.insert(seq.end(), ref.greedy_0.begin(), ref.greedy_0.end());
  KvCache cache = model.make_cache(4);  // small on purpose: growth is exercised
  // Prefill the first 3 tokens, then one token per step.
  ForwardInput in;
  in.tokens = std::span<const int32_t>(seq).first(3);
  in.logits = LogitsMode::kAll;
  Tensor logits = model.forward(in, cache);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_LE(row_rel_error(logits.data_as<float>() + i * ref.vocab,
                            ref.logits_0.data() + i * ref.vocab, ref.vocab),
              kLogitsRel);
  }
  for (size_t i = 3; i < seq.size(); ++i) {
    in.tokens = std::span<const int32_t>(seq).subspan(i, 1);
    in.logits = LogitsMode::kLast;
    logits = model.forward(in, cache);
    EXPECT_LE(row_rel_error(logits.data_as<float>(), ref.logits_0.data() + i * ref.vocab, ref.vocab),
              kLogitsRel)
        << GetParam().name << " step " << i;
  }
  EXPECT_EQ(cache.size(), int64_t(seq.size()));
}

TEST_P(ModelFixture, GreedyContinuationsIdentical) {
  const auto ref = load_reference(GetParam().name);
  Model model(engine_data(GetParam().name));
  GenerateConfig gc;
  gc.max_tokens = int64_t(ref.greedy_0.size());
  gc.stop_at_eos = false;
  EXPECT_EQ(generate(model, ref.prompts[0], gc).tokens, ref.greedy_0);
  EXPECT_EQ(generate(model, ref.prompts[1], gc).tokens, ref.greedy_1);
  gc.prefill_chunk = 4;  // chunked prefill goes through the same cache path
  EXPECT_EQ(generate(model, ref.prompts[0], gc).tokens, ref.greedy_0);
}

INSTANTIATE_TEST_SUITE_P(
    Transformers, ModelFixture,
    ::testing::Values(FixtureCase{"llama", "LlamaForCausalLM"},
                      FixtureCase{"qwen2", "Qwen2ForCausalLM"},
                      FixtureCase{"qwen3", "Qwen3ForCausalLM"},
                      FixtureCase{"mistral", "MistralForCausalLM"},
                      FixtureCase{"qwen2_bf16", "Qwen2ForCausalLM"},
                      FixtureCase{"qwen3_f16", "Qwen3ForCausalLM"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ModelLoad, FixtureFeatures) {
  const Model llama(engine_data("llama"));
  EXPECT_TRUE(llama.config().tie_word_embeddings);
  EXPECT_EQ(llama.config().rope.scaling, RopeScaling::kLlama3);
  EXPECT_EQ(llama.weight_dtype(), DType::kF32);
  const Model qwen2(engine_data("qwen2"));  // three shards + index
  EXPECT_TRUE(qwen2.config().qkv_bias);
  EXPECT_EQ(qwen2.config().num_kv_heads, 1);
  const Model qwen3(engine_data("qwen3"));
  EXPECT_TRUE(qwen3.config().qk_norm);
  EXPECT_EQ(qwen3.config().head_dim, 32);
  EXPECT_FALSE(qwen3.config().tie_word_embeddings);
  const Model bf16(engine_data("qwen2_bf16"));
  EXPECT_EQ(bf16.weight_dtype(), DType::kBF16);
  const Model f16(engine_data("qwen3_f16"));
  EXPECT_EQ(f16.weight_dtype(), DType::kF32);  // f16 is widened at load
  const Model mistral(engine_data("mistral"));
  EXPECT_EQ(mistral.config().layer_window, (std::vector<int64_t>{8, 8}));
}

// The AVX-512 BF16 path rounds activations to bf16 (8-bit significand): logits move by a few
// parts in a thousand, greedy choices with a clear margin stay.
TEST(ModelBf16Dot, Avx512Bf16PathCloseToReference) {
  if (!linear_isa_supported(LinearIsa::kAvx512)) GTEST_SKIP() << "no AVX-512 BF16 here";
  set_linear_isa(LinearIsa::kAvx512);
  const auto ref = load_reference("qwen2_bf16");
  Model model(engine_data("qwen2_bf16"));
  KvCache cache = model.make_cache();
  ForwardInput in;
  in.tokens = ref.prompts[0];
  in.logits = LogitsMode::kAll;
  const Tensor logits = model.forward(in, cache);
  set_linear_isa(LinearIsa::kAuto);
  for (int64_t i = 0; i < logits.size(0); ++i) {
    EXPECT_LE(row_rel_error(logits.data_as<float>() + i * ref.vocab,
                            ref.logits_0.data() + i * ref.vocab, ref.vocab),
              3e-2);
  }
}

}  // namespace
}  // namespace sieve::engine
