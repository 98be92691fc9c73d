// Tokenizer tests against fixtures made by Hugging Face `tokenizers` (the reference library):
// scripts/make_tokenizer_fixtures.py trains byte-level (GPT-2 regex), SentencePiece-style
// (Llama-2) and Llama-3-regex BPE tokenizers, then records encode/decode results for a mixed
// corpus under every pipeline variant. Unicode helpers are checked against Python's unicodedata.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "sieve/core/error.h"
#include "sieve/engine/tokenizer.h"
#include "sieve/engine/unicode.h"

namespace sieve::engine {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const std::filesystem::path kDataDir =
    std::filesystem::path(SIEVE_SOURCE_DIR) / "tests" / "data" / "engine" / "tokenizer";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const json& cases() {
  static const json c = json::parse(read_text(kDataDir / "cases.json"));
  return c;
}

json base_spec(const std::string& file) { return json::parse(read_text(kDataDir / file)); }

Tokenizer variant_tokenizer(const json& variant) {
  json spec = base_spec(variant["base"].get<std::string>());
  spec.merge_patch(variant["patch"]);
  return Tokenizer::from_json(spec.dump());
}

const json& find_variant(const std::string& name) {
  for (const json& v : cases()["variants"]) {
    if (v["name"] == name) return v;
  }
  ADD_FAILURE() << "no variant " << name;
  static const json none;
  return none;
}

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

std::string printable(const std::string& s) { return json(s).dump(); }

class TokenizerFixture : public ::testing::TestWithParam<std::string> {};

// Every corpus string: ids with and without special tokens, and both decodes, equal the reference.
TEST_P(TokenizerFixture, MatchesReferenceLibrary) {
  const json& variant = find_variant(GetParam());
  const Tokenizer tokenizer = variant_tokenizer(variant);
  const json& corpus = cases()["corpus"];
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i].get<std::string>();
    SCOPED_TRACE("corpus[" + std::to_string(i) + "] = " + printable(text));
    const auto ids = tokenizer.encode(text, true);
    EXPECT_EQ(ids, ids_of(variant["encode"][i]));
    EXPECT_EQ(tokenizer.encode(text, false), ids_of(variant["encode_plain"][i]));
    const auto expected_ids = ids_of(variant["encode"][i]);
    EXPECT_EQ(tokenizer.decode(expected_ids, false), variant["decode"][i].get<std::string>());
    EXPECT_EQ(tokenizer.decode(expected_ids, true), variant["decode_skip"][i].get<std::string>());
  }
  for (std::size_t i = 0; i < variant["random_ids"].size(); ++i) {
    const auto ids = ids_of(variant["random_ids"][i]);
    SCOPED_TRACE("random_ids[" + std::to_string(i) + "]");
    EXPECT_EQ(tokenizer.decode(ids, false), variant["random_decode"][i].get<std::string>());
    EXPECT_EQ(tokenizer.decode(ids, true), variant["random_decode_skip"][i].get<std::string>());
  }
}

std::vector<std::string> variant_names() {
  std::vector<std::string> names;
  for (const json& v : cases()["variants"]) names.push_back(v["name"].get<std::string>());
  return names;
}

INSTANTIATE_TEST_SUITE_P(Variants, TokenizerFixture, ::testing::ValuesIn(variant_names()),
                         [](const auto& info) { return info.param; });

// Byte-level BPE without normalizer or prefix space is lossless (except for the whitespace that
// lstrip/rstrip added tokens such as <mask> and <rs> swallow by design).
TEST(Tokenizer, ByteLevelRoundTrip) {
  for (const char* name : {"gpt2", "llama3", "llama3_merges_only"}) {
    const Tokenizer tokenizer = variant_tokenizer(find_variant(name));
    for (const json& t : cases()["corpus"]) {
      const std::string text = t.get<std::string>();
      if (text.find("<mask>") != std::string::npos || text.find("<rs>") != std::string::npos) {
        continue;
      }
      EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, false)), text) << name << " " << printable(text);
    }
  }
}

// One tokenizer shared by several threads (the word cache is shared) gives the reference ids.
TEST(Tokenizer, ConcurrentEncodeIsConsistent) {
  const json& variant = find_variant("llama3");
  const Tokenizer tokenizer = variant_tokenizer(variant);
  const json& corpus = cases()["corpus"];
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep) {
        for (std::size_t i = 0; i < corpus.size(); ++i) {
          const std::size_t k = (i + static_cast<std::size_t>(t) * 7) % corpus.size();
          if (tokenizer.encode(corpus[k].get<std::string>(), true) != ids_of(variant["encode"][k])) {
            ++mismatches[static_cast<std::size_t>(t)];
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(Tokenizer, FromFileAndVocabulary) {
  const Tokenizer t = Tokenizer::from_file(kDataDir / "llama3.json");
  const json spec = base_spec("llama3.json");
  const auto& vocab = spec["model"]["vocab"];
  EXPECT_EQ(t.vocab_size(), static_cast<int32_t>(vocab.size() + spec["added_tokens"].size()));
  for (const auto& [token, id] : vocab.items()) {
    ASSERT_EQ(t.token_to_id(token), id.get<int32_t>());
    ASSERT_EQ(t.id_to_token(id.get<int32_t>()), token);
  }
  const auto bot = t.token_to_id("<|begin_of_text|>");
  ASSERT_TRUE(bot.has_value());
  EXPECT_TRUE(t.is_special(*bot));
  EXPECT_EQ(t.id_to_token(*bot), "<|begin_of_text|>");
  EXPECT_EQ(t.bos_id(), bot);  // from the TemplateProcessing post-processor
  EXPECT_FALSE(t.token_to_id("no such token").has_value());
  EXPECT_FALSE(t.is_special(0));
}

// BOS/EOS from tokenizer_config.json, config.json and generation_config.json next to the file.
TEST(Tokenizer, SpecialIdsFromModelFolder) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("sieve_tokenizer_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kDataDir / "bytelevel.json", dir / "tokenizer.json");
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"bos_token": {"content": "<|im_start|>"}, "eos_token": "<|im_end|>"})";
  std::ofstream(dir / "config.json") << R"({"bos_token_id": 5, "eos_token_id": [0, 1258]})";
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": 3})";
  const Tokenizer t = Tokenizer::from_file(dir);
  const auto im_start = t.token_to_id("<|im_start|>");
  const auto im_end = t.token_to_id("<|im_end|>");
  ASSERT_TRUE(im_start && im_end);
  EXPECT_EQ(t.bos_id(), im_start);
  EXPECT_EQ(t.eos_ids(), (std::vector<int32_t>{*im_end, 0, 3}));
  EXPECT_TRUE(t.is_eos(0));
  EXPECT_FALSE(t.is_eos(4));
  std::filesystem::remove_all(dir);
}

TEST(Tokenizer, InvalidUtf8InputIsRepairedFirst) {
  const Tokenizer t = Tokenizer::from_file(kDataDir / "bytelevel.json");
  EXPECT_EQ(t.encode("a\xFF" "b\xE2\x82", false), t.encode("a\xEF\xBF\xBD" "b\xEF\xBF\xBD", false));
}

// Streaming detokenization reproduces decode() of the whole sequence.
TEST(Tokenizer, TokenStreamMatchesDecode) {
  for (const char* name : {"gpt2", "sp_llama2", "sp_metaspace_first", "llama3"}) {
    const Tokenizer t = variant_tokenizer(find_variant(name));
    for (const json& text : cases()["corpus"]) {
      const auto ids = t.encode(text.get<std::string>(), true);
      for (bool skip : {false, true}) {
        TokenStream stream(t, skip);
        std::string streamed;
        for (int32_t id : ids) {
          const std::string piece = stream.push(id);
          EXPECT_TRUE(unicode::is_valid_utf8(piece));
          streamed += piece;
        }
        streamed += stream.finish();
        EXPECT_EQ(streamed, t.decode(ids, skip)) << name << " " << printable(text);
      }
    }
  }
}

template <typename Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected sieve::Error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(needle));
  }
}

TEST(Tokenizer, ErrorsNameTheProblem) {
  expect_error([] { Tokenizer::from_json("{\"model\": {"); }, "not valid JSON");
  expect_error([] { Tokenizer::from_json("[1, 2]"); }, "top level");
  expect_error([] { Tokenizer::from_json("{\"normalizer\": null}"); }, "missing 'model'");
  expect_error([] { Tokenizer::from_json(R"({"model": {"type": "Unigram", "vocab": []}})"); },
               "model type 'Unigram' is not supported");
  expect_error([] { Tokenizer::from_json(R"({"model": {"type": "BPE", "merges": []}})"); },
               "missing field 'vocab'");
  expect_error([] { Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}}})"); },
               "missing field 'merges'");
  expect_error(
      [] {
        Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1},
                                            "merges": ["a b"]}})");
      },
      "merged token 'ab' is not in the vocab");
  expect_error(
      [] {
        Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "c"]]}})");
      },
      "token 'c' is not in the vocab");
  expect_error([] { Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": -3}, "merges": []}})"); },
               "non-negative integer id");
  expect_error(
      [] {
        Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                                 "pre_tokenizer": {"type": "UnicodeScripts"}})");
      },
      "unsupported pre_tokenizer type 'UnicodeScripts'");
  expect_error(
      [] {
        Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                                 "normalizer": {"type": "NFKC"}})");
      },
      "unsupported normalizer type 'NFKC'");
  expect_error(
      [] {
        Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                                 "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"},
                                                   "behavior": "Isolated"}})");
      },
      "cannot compile regex '(a'");
  expect_error(
      [] {
        Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [],
                                           "unk_token": "<unk>"}})");
      },
      "unk_token '<unk>' is not in model.vocab");
  expect_error([] { Tokenizer::from_file(kDataDir / "no_such_tokenizer.json"); }, "does not exist");

  const Tokenizer t = Tokenizer::from_file(kDataDir / "sentencepiece.json");
  const std::vector<int32_t> negative{1, -1};
  const std::vector<int32_t> too_large{t.vocab_size()};
  expect_error([&] { t.decode(negative); }, "token id -1 is out of range");
  expect_error([&] { t.decode(too_large); }, "out of range");
  expect_error([&] { t.id_to_token(t.vocab_size() + 7); }, "out of range");
}

// Unicode helpers against Python's unicodedata and codecs (see make_tokenizer_fixtures.py).
TEST(Unicode, MatchesPython) {
  const json& u = cases()["unicode"];
  for (std::size_t i = 0; i < u["texts"].size(); ++i) {
    const std::string text = u["texts"][i].get<std::string>();
    SCOPED_TRACE(printable(text));
    EXPECT_EQ(unicode::nfc(text), u["nfc"][i].get<std::string>());
    EXPECT_EQ(unicode::nfd(text), u["nfd"][i].get<std::string>());
    EXPECT_EQ(unicode::lowercase(text), u["lower"][i].get<std::string>());
  }
  for (const json& c : u["utf8_repair"]) {
    const std::string hex = c[0].get<std::string>();
    std::string bytes;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    const std::string expected = c[1].get<std::string>();
    EXPECT_EQ(unicode::to_valid_utf8(bytes), expected) << hex;
    EXPECT_EQ(unicode::is_valid_utf8(bytes), bytes == expected) << hex;
  }
}

TEST(Unicode, ByteLevelMapIsABijection) {
  std::set<std::string> seen;
  for (int b = 0; b < 256; ++b) {
    const std::string& s = unicode::byte_to_unicode(static_cast<uint8_t>(b));
    std::size_t i = 0;
    const char32_t cp = unicode::next_code_point(s, i);
    EXPECT_EQ(i, s.size());
    EXPECT_EQ(unicode::unicode_to_byte(cp), b);
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(unicode::byte_to_unicode(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(unicode::byte_to_unicode('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(unicode::byte_to_unicode('A'), "A");
  EXPECT_EQ(unicode::unicode_to_byte(U'\u4e2d'), -1);
}

}  // namespace
}  // namespace sieve::engine
