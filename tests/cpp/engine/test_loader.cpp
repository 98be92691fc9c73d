// Loading failures give sieve::Error with a message naming the problem: missing files, an
// unsupported architecture, corrupt safetensors, missing tensors, shape mismatches, bad shard
// indexes, and bad forward inputs (token ids, positions, mask and cache shapes).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "sieve/core/safetensors.h"
#include "sieve/engine/model.h"
#include "test_model_fixtures.h"

namespace sieve::engine {
namespace {

namespace fs = std::filesystem;
using test::engine_data;

class Loader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("sieve_loader_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string error_loading() const {
    try {
      Model m(dir_.string());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  void copy_config(const char* from = "llama") const {
    fs::copy_file(fs::path(engine_data(from)) / "config.json", dir_ / "config.json");
  }
  // Rewrites the llama fixture weights with `edit` applied to the tensor map.
  template <class Edit>
  void write_weights(Edit edit) const {
    SafetensorsFile src(engine_data("llama/model.safetensors"));
    std::map<std::string, TensorView> tensors;
    for (const auto& [name, e] : src.entries()) tensors[name] = src.view(name);
    std::vector<Tensor> keep;
    edit(tensors, keep);
    save_safetensors((dir_ / "model.safetensors").string(), tensors);
  }

  fs::path dir_;
};

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST_F(Loader, MissingFiles) {
  EXPECT_TRUE(has(error_loading(), "config.json"));
  copy_config();
  const std::string e = error_loading();
  EXPECT_TRUE(has(e, "model.safetensors")) << e;
  try {
    Model m((dir_ / "nope").string());
    FAIL();
  } catch (const Error& e2) {
    EXPECT_TRUE(has(e2.what(), "does not exist")) << e2.what();
  }
}

TEST_F(Loader, UnsupportedArchitectureIsNamed) {
  std::ofstream(dir_ / "config.json") << R"({"architectures": ["GPTNeoXForCausalLM"], "vocab_size": 8})";
  const std::string e = error_loading();
  EXPECT_TRUE(has(e, "GPTNeoXForCausalLM")) << e;
  EXPECT_TRUE(has(e, "LlamaForCausalLM")) << "the message lists what is supported: " << e;
}

TEST_F(Loader, CorruptSafetensors) {
  copy_config();
  {
    std::ifstream in(engine_data("llama/model.safetensors"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes.resize(bytes.size() / 2);  // truncated: data offsets point past the end
    std::ofstream(dir_ / "model.safetensors", std::ios::binary) << bytes;
  }
  EXPECT_FALSE(error_loading().empty());
  std::ofstream(dir_ / "model.safetensors", std::ios::binary | std::ios::trunc) << "garbage";
  EXPECT_FALSE(error_loading().empty());
}

TEST_F(Loader, MissingTensorIsNamed) {
  copy_config();
  write_weights([](auto& t, auto&) { t.erase("model.layers.1.mlp.up_proj.weight"); });
  const std::string e = error_loading();
  EXPECT_TRUE(has(e, "model.layers.1.mlp.up_proj.weight")) << e;
}

TEST_F(Loader, ShapeMismatchIsNamed) {
  copy_config();
  write_weights([](auto& t, auto& keep) {
    keep.emplace_back(DType::kF32, std::initializer_list<int64_t>{32, 64});  // k_proj is [32, 64]... wrong for q
    t["model.layers.0.self_attn.q_proj.weight"] = keep.back();
  });
  const std::string e = error_loading();
  EXPECT_TRUE(has(e, "model.layers.0.self_attn.q_proj.weight")) << e;
  EXPECT_TRUE(has(e, "[32, 64]") && has(e, "[64, 64]")) << e;
}

TEST_F(Loader, UnexpectedBiasIsReported) {
  copy_config();
  write_weights([](auto& t, auto& keep) {
    keep.emplace_back(DType::kF32, std::initializer_list<int64_t>{64});
    t["model.layers.0.self_attn.q_proj.bias"] = keep.back();
  });
  EXPECT_TRUE(has(error_loading(), "q_proj.bias"));
}

TEST_F(Loader, BadShardIndex) {
  copy_config("qwen2");
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00003.safetensors"}})";
  EXPECT_TRUE(has(error_loading(), "model-00001-of-00003.safetensors"));  // shard missing
  std::ofstream(dir_ / "model.safetensors.index.json", std::ios::trunc) << R"({"weight_map": 3})";
  EXPECT_TRUE(has(error_loading(), "weight_map"));
  std::ofstream(dir_ / "model.safetensors.index.json", std::ios::trunc)
      << R"({"weight_map": {"x": "../../etc/passwd"}})";
  EXPECT_TRUE(has(error_loading(), "plain file name"));
}

TEST(ForwardInputs, ClearErrors) {
  Model m(engine_data("qwen3"));
  KvCache cache = m.make_cache();
  auto err = [&](const std::vector<int32_t>& tokens, const std::vector<int64_t>& pos = {},
                 const TreeMask* tree = nullptr, KvCache* c = nullptr) -> std::string {
    ForwardInput in;
    in.tokens = tokens;
    in.positions = pos;
    in.maybe_tree = tree;
    try {
      m.forward(in, c ? *c : cache);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_TRUE(has(err({1, 512}), "512"));  // vocab is 512
  EXPECT_TRUE(has(err({-3}), "-3"));
  EXPECT_TRUE(has(err({}), "at least one token"));
  EXPECT_TRUE(has(err({1, 2}, {0}), "positions"));
  EXPECT_TRUE(has(err({1}, {-1}), "negative"));
  const TreeMask t3 = TreeMask::causal(3);
  EXPECT_TRUE(has(err({1, 2}, {}, &t3), "tree mask"));
  KvCache other(5, 2, 32);
  EXPECT_TRUE(has(err({1}, {}, nullptr, &other), "not made for this model"));
  EXPECT_EQ(cache.size(), 0) << "failed forwards leave the cache untouched";
  EXPECT_EQ(err({1, 2, 3}), "");
  EXPECT_EQ(cache.size(), 3);
}

}  // namespace
}  // namespace sieve::engine
