#!/usr/bin/env python3
"""Reference fixtures for sieve's tokenizer (tests/cpp/engine/test_tokenizer.cpp).

Trains three small BPE tokenizers with the Hugging Face `tokenizers` wheel (the reference
implementation) on a short built-in text, then encodes and decodes a mixed corpus with every
pipeline variant and writes the results next to the tokenizer.json files:

  tests/data/engine/tokenizer/bytelevel.json     byte-level BPE, GPT-2 regex, <|endoftext|> & co.
  tests/data/engine/tokenizer/sentencepiece.json SentencePiece-style BPE (Llama-2: metaspace,
                                                 byte fallback <0xXX>, <unk>, <s> BOS)
  tests/data/engine/tokenizer/llama3.json        byte-level BPE, Llama-3 split regex, ignore_merges
  tests/data/engine/tokenizer/cases.json         corpus, variants (JSON merge patches applied to
                                                 one of the files above) and the expected ids/text

Variants are RFC 7386 merge patches so one trained model serves several pipelines (Qwen2 regex with
NFC, Metaspace pre-tokenizer, add_prefix_space, Split behaviours, ...) without repeating the vocab.

  python3 scripts/make_tokenizer_fixtures.py            # writes the fixtures (needs `tokenizers`)
  python3 scripts/make_tokenizer_fixtures.py tables     # regenerates src/engine/unicode_tables.cpp
                                                        # from Python's unicodedata

Deterministic: the same `tokenizers` version gives byte-identical output.
"""
import copy
import json
import os
import random
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "data", "engine", "tokenizer")

GPT2_REGEX = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
               r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

TRAIN_TEXT = r'''
The tokenizer turns text into numbers, and the model turns numbers into text again. A good
tokenizer keeps common words whole and splits rare words into pieces that the model has seen
before. Byte pair encoding starts from single bytes and repeatedly merges the most frequent pair
of neighbouring symbols into a new symbol, until the vocabulary reaches the requested size.
When the model reads a prompt, every word is first cut by a regular expression, then each piece
is merged by rank, and finally the pieces are looked up in the vocabulary.

It's a small test, but it's honest: we'll compare every id with the reference library, and we've
written the corpus so that it covers contractions, numbers like 3.14159, 2024-06-01 and 1,000,000,
whitespace runs, tabs, newlines and accented words such as café, naïve, résumé, déjà vu and Zürich.
Speculative decoding drafts several tokens at once and verifies them with one forward pass of the
target model; the accepted prefix is kept and the rest of the draft is thrown away.

def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
    """Return the token ids of text."""
    pieces = self.pre_tokenize(self.normalize(text))
    ids = []
    for piece in pieces:
        ids.extend(self.model.tokenize(piece))
    if add_special_tokens:
        ids = [self.bos_id] + ids
    return ids

class KVCache:
    def __init__(self, num_layers, num_heads, head_dim, max_len):
        self.keys = [None] * num_layers
        self.values = [None] * num_layers
        self.length = 0

    def truncate(self, length):
        if length < 0 or length > self.length:
            raise ValueError(f"cannot truncate to {length}, cache holds {self.length}")
        self.length = length

for i in range(10):
    print(i, i * i, "even" if i % 2 == 0 else "odd")

#include <cstdint>
#include <vector>

int32_t sum(const std::vector<int32_t>& values) {
  int32_t total = 0;
  for (int32_t v : values) total += v;
  return total;
}

template <typename T>
T clamp(T x, T lo, T hi) { return x < lo ? lo : (x > hi ? hi : x); }

{"model": "llama", "hidden_size": 4096, "num_attention_heads": 32, "rope_theta": 500000.0}

The attention layer computes a softmax over the keys for every query. Sparse attention skips the
blocks whose weights are negligible, so a long prompt is processed in a fraction of the time.
The results must not change: the selected blocks hold almost all of the attention mass.

Markov chain Monte Carlo draws samples from a posterior distribution by proposing a move and
accepting it with a probability that keeps the target invariant. Control variates reduce the
variance of the estimates; diagnostics such as split R-hat and the effective sample size tell
whether the chains have mixed. Gradients, Hessians and metrics are computed for every proposal.

import numpy as np
from dataclasses import dataclass

@dataclass
class Settings:
    step_size: float = 0.1
    num_warmup: int = 1000
    num_samples: int = 2000
    seed: int = 42

def log_density(theta: np.ndarray, data: np.ndarray) -> float:
    logits = data @ theta
    return float(np.sum(-np.logaddexp(0.0, -logits)) - 0.5 * theta.dot(theta))

while not done:
    try:
        batch = next(iterator)
    except StopIteration:
        break
    results.append({"loss": loss.item(), "step": step, "lr": scheduler.get_last_lr()[0]})

struct Matrix {
  std::size_t rows = 0, cols = 0;
  std::vector<float> data;
  float& operator()(std::size_t r, std::size_t c) { return data[r * cols + c]; }
};

static_assert(sizeof(float) == 4, "float must be 32 bits");
auto lambda = [&](const auto& item) -> bool { return item.size() > threshold; };
if (status != 0) { fprintf(stderr, "error: %s\n", strerror(errno)); return EXIT_FAILURE; }

| method | density | perplexity | speedup |
|--------|---------|------------|---------|
| dense  | 100 %   | 3.21       | 1.00x   |
| sparse | 12.5 %  | 3.24       | 4.70x   |

Der schnelle braune Fuchs springt über den faulen Hund. Les élèves étudient à l'université de
Genève pendant l'été. El niño comió una manzana y después bebió agua fría con su hermano.
Configuration files use YAML or TOML; errors should name the missing field and the file path.
Please don't hesitate: they're ready, we're waiting, and you've got everything you need.
Version 2.3.1 was released on 2025-01-15 with 128 fixes, 64 features and 32 breaking changes.
'''

# Corpus: every string is encoded with every variant. Covers English, code, CJK, emoji, whitespace
# runs, tabs/newlines, special tokens inline, numbers, contractions, accents and odd sequences.
CORPUS = [
    "Hello world",
    "Hello, world! How are you doing today?",
    " leading space and trailing space ",
    "I'm sure you'll see they've said it's theirs, we'd've known. DON'T SHOUT, I'LL STOP.",
    "Numbers: 0 7 42 123 1234 12345678 3.14159 -17 1e-9 2024-06-01 1,000,000",
    "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n",
    "\tindented\twith\ttabs\n\t\tand two\n",
    "multiple     spaces    here\n\n\n   \n  end",
    "   ",
    "\n",
    "",
    "a",
    "café naïve résumé déjà vu Zürich Ångström",
    "Cafe\u0301 with a combining accent vs caf\u00e9 precomposed",
    "日本語のテキストも正しく処理されます。中文文本也一样。",
    "한국어 텍스트 테스트",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️ ✨",
    "Mixed 日本 text with emoji 🎉 and code `x = 1`",
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    "first<|endoftext|> <|endoftext|>second <|endoftext|>",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "<s>Hello</s> <s> spaced </s>",
    "<|begin_of_text|>Hello<|eot_id|>",
    "call <tool> now and <tool>later",
    "a <mask> b  <mask>c<mask>",
    "unknown markers: <|endoftext <|endof|> <s <0xFF> <0x41>",
    "replacement char \ufffd and nbsp\u00a0here and NEL\u0085there and ideographic\u3000space",
    "zero width\u200bjoiner\u200dand bidi \u202eover\u202c ride",
    "line\r\nendings\rand\u2028separators\u2029",
    "symbols ~!@#$%^&*()_+-=[]{}|;:'\",.<>/?\\ `backticks`",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz",
    "Ⅻ ½ ² ٣ ७ 𝟘𝟙𝟚 full width ０１２ ＡＢＣ",
    "Ελληνικά Русский текст עברית العربية हिन्दी",
    "ſ and 'S vs 's and İstanbul ﬁnance",
    "hello_world_token supercalifragilistic",
    "later translater laterally later_ later2 (later) LATER later",
    "a<rs>   b <rs>\n\nc<rs>",
    "[INST] hi [INST]x [/INST] ok",
    "x" * 40 + " " + "ab" * 20,
]


def random_corpus(seed=1234, count=30, length=24):
    """Random strings from a pool rich in the characters where regex engines could differ."""
    pool = (list("abcXYZ019 '\t\n\r.,!?-_<>|") + [" ", "  ", "'s", "'LL", "<|endoftext|>", "<s>"] +
            ["\u00a0", "\u0085", "\u2028", "\u3000", "\u200b", "\u0301", "\u00e9", "\u00df",
             "\u0130", "\u017f", "\u4e2d", "\u6587", "\u3042", "\U0001F600", "\U0001F44D",
             "\U0001F3FD", "\u0663", "\u00bd", "\u2167", "\ufffd", "\u2581", "\uff10",
             "\U0001D7D8", "\u05d0", "\u0627", "\u0915\u094d"])
    rng = random.Random(seed)
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, length))) for _ in range(count)]


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (the C++ test applies the same with nlohmann::json)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def train_bytelevel(tokenizers):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers import trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=256 + 1 + 1000, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([TRAIN_TEXT], trainer)
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>",
                            AddedToken("<mask>", lstrip=True, rstrip=False, special=True,
                                       normalized=False)])
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False),
                    AddedToken("later", single_word=True, special=False, normalized=True),
                    AddedToken("<rs>", rstrip=True, special=False, normalized=False)])
    return json.loads(tok.to_str())


def train_sentencepiece(tokenizers):
    """Llama-2 style: <unk>/<s>/</s>, 256 byte tokens <0x00>..<0xFF>, then merged pieces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always",
                                                 split=True)
    trainer = trainers.BpeTrainer(vocab_size=200 + 1000, special_tokens=["<unk>", "<s>", "</s>"],
                                  limit_alphabet=120, show_progress=False)
    tok.train_from_iterator([TRAIN_TEXT], trainer)
    trained = json.loads(tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for token, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    # Merges as "a b" strings (the older format) to cover both merge formats.
    merges = [f"{a} {b}" for a, b in trained["merges"] if " " not in a + b]
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    # A normalized special token: matched in the normalized text as "▁[INST]" (a real quirk of
    # SentencePiece-style files whose normalizer prepends and replaces spaces).
    added.append({"id": len(vocab), "content": "[INST]", "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": True, "special": True})
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                  "byte_fallback": True, "ignore_merges": False, "vocab": vocab, "merges": merges},
    }


def train_llama3(tokenizers):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=256 + 1000, initial_alphabet=pre_tokenizers.ByteLevel
                                  .alphabet(), show_progress=False)
    tok.train_from_iterator([TRAIN_TEXT], trainer)
    data = json.loads(tok.to_str())
    model = data["model"]
    model["ignore_merges"] = True
    # Whole-word entries that no merge sequence produces: only ignore_merges emits them.
    for word in ["Ġsupercalifragilistic", "hello_world_token", "Ġtokenizer.", "ĠĠĠĠĠĠĠ"]:
        if word not in model["vocab"]:
            model["vocab"][word] = len(model["vocab"])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    data["added_tokens"] = [
        {"id": len(model["vocab"]) + i, "content": c, "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True} for i, c in enumerate(specials)]
    data["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {
             "id": "<|begin_of_text|>", "ids": [len(model["vocab"])],
             "tokens": ["<|begin_of_text|>"]}}}]}
    return data


def split_pre(pattern, behavior, invert=False, regex=True):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern},
            "behavior": behavior, "invert": invert}


BYTELEVEL_NOREGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                     "use_regex": False}

# (name, base file, merge patch). The patch is applied to the base tokenizer.json; a string in a
# TemplateProcessing "ids" list is replaced by that added token's id in the base.
VARIANTS = [
    ("gpt2", "bytelevel.json", {}),
    ("gpt2_prefix_space", "bytelevel.json", {
        "pre_tokenizer": {"add_prefix_space": True},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {
                               "<|endoftext|>": {"id": "<|endoftext|>", "ids": [0],
                                                 "tokens": ["<|endoftext|>"]},
                               "<|im_end|>": {"id": "<|im_end|>", "ids": ["<|im_end|>"],
                                              "tokens": ["<|im_end|>"]}}}}),
    ("gpt2_split_behaviours", "bytelevel.json", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split_pre("x", "MergedWithPrevious", regex=False),
            split_pre(r"[,;]", "Removed"),
            split_pre(r"\.", "MergedWithNext"),
            split_pre(r"\p{Lu}", "Contiguous"),
            split_pre(r"\s", "Isolated", invert=True),
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True}]}}),
    ("gpt2_normalized", "bytelevel.json", {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Strip", "strip_left": True, "strip_right": False}, {"type": "NFC"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False}, {"type": "WhitespaceSplit"},
            {"type": "Punctuation", "behavior": "Isolated"},
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
             "use_regex": False}]}}),
    ("gpt2_whitespace", "bytelevel.json", {
        "normalizer": {"type": "ByteLevel"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Whitespace"}, {"type": "CharDelimiterSplit", "delimiter": "\u0120"}]}}),
    ("sp_llama2", "sentencepiece.json", {}),
    ("sp_metaspace_first", "sentencepiece.json", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                          "split": False},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
             "split": False}, {"type": "ByteFallback"}, {"type": "Fuse"}]}}),
    ("sp_metaspace_split", "sentencepiece.json", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                          "split": True},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                    "split": True},
        "model": {"fuse_unk": False, "byte_fallback": False}}),
    ("sp_metaspace_never", "sentencepiece.json", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never",
                          "split": True},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never",
             "split": True}]}}),
    ("llama3", "llama3.json", {}),
    ("llama3_merges_only", "llama3.json", {"model": {"ignore_merges": False}}),
    ("qwen2", "llama3.json", {
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split_pre(QWEN2_REGEX, "Isolated"), BYTELEVEL_NOREGEX]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False}}),
]

RANDOM_ID_SEQUENCES = 8


def unicode_cases(corpus):
    """Unicode helper references from Python's unicodedata / codecs (not from our code)."""
    rng = random.Random(7)
    pool = ["a", "e", "o", "A", "\u0301", "\u0300", "\u0308", "\u0323", "\u031b", "\u0327",
            "\u05b0", "\u0591", "\u1100", "\u1161", "\u11a8", "\uac00", "\u00e9", "\u1e69",
            "\u212b", "\u2126", "\u0344", "\u0f73", "\U0001d15e", "\u30ab", "\u3099", " "]
    marks = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 12))) for _ in range(40)]
    texts = corpus + marks
    byte_cases = [b"\xe2\x82", b"\xe2\x82\xac", b"\xf0\x80\x80", b"\xed\xa0\x80", b"\xc0\xaf",
                  b"a\xffb", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"\xe0\x9f\x80", b"\x80\xbf",
                  b"\xc2", b"\xf8\x88\x80\x80\x80", b"ok \xce\xbb \xce"]
    for _ in range(20):
        byte_cases.append(bytes(rng.choice([0x41, 0x80, 0xbf, 0xc2, 0xe0, 0xe2, 0xed, 0xf0, 0xf4,
                                            0x9f, 0xa0, 0x90, 0xff])
                                for _ in range(rng.randint(1, 8))))
    return {
        "texts": texts,
        "nfc": [unicodedata.normalize("NFC", t) for t in texts],
        "nfd": [unicodedata.normalize("NFD", t) for t in texts],
        "lower": ["".join(c.lower() for c in t) for t in texts],
        "utf8_repair": [[b.hex(), b.decode("utf-8", errors="replace")] for b in byte_cases],
    }


def resolve_ids(patch, base):
    ids = {t["content"]: t["id"] for t in base["added_tokens"]}
    if isinstance(patch, dict):
        return {k: ([ids[x] if isinstance(x, str) else x for x in v] if k == "ids" else
                    resolve_ids(v, base)) for k, v in patch.items()}
    if isinstance(patch, list):
        return [resolve_ids(x, base) for x in patch]
    return patch


def build_cases(tokenizers, bases):
    corpus = CORPUS + random_corpus()
    cases = {"tokenizers_version": tokenizers.__version__, "corpus": corpus, "variants": [],
             "unicode": unicode_cases(corpus)}
    for name, base, patch in VARIANTS:
        patch = resolve_ids(patch, bases[base])
        spec = merge_patch(bases[base], patch)
        tok = tokenizers.Tokenizer.from_str(json.dumps(spec))
        entry = {"name": name, "base": base, "patch": patch, "encode": [], "encode_plain": [],
                 "decode": [], "decode_skip": [], "random_ids": [], "random_decode": [],
                 "random_decode_skip": []}
        for text in corpus:
            ids = tok.encode(text, add_special_tokens=True).ids
            entry["encode"].append(ids)
            entry["encode_plain"].append(tok.encode(text, add_special_tokens=False).ids)
            entry["decode"].append(tok.decode(ids, skip_special_tokens=False))
            entry["decode_skip"].append(tok.decode(ids, skip_special_tokens=True))
        rng = random.Random(99)
        size = tok.get_vocab_size(with_added_tokens=True)
        for _ in range(RANDOM_ID_SEQUENCES):
            ids = [rng.randrange(size) for _ in range(rng.randint(1, 16))]
            entry["random_ids"].append(ids)
            entry["random_decode"].append(tok.decode(ids, skip_special_tokens=False))
            entry["random_decode_skip"].append(tok.decode(ids, skip_special_tokens=True))
        cases["variants"].append(entry)
    return cases


def write_json(name, data):
    path = os.path.join(OUT_DIR, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def make_fixtures():
    import tokenizers
    os.makedirs(OUT_DIR, exist_ok=True)
    bases = {"bytelevel.json": train_bytelevel(tokenizers),
             "sentencepiece.json": train_sentencepiece(tokenizers),
             "llama3.json": train_llama3(tokenizers)}
    for name, data in bases.items():
        tokenizers.Tokenizer.from_str(json.dumps(data))  # the reference must accept it
        write_json(name, data)
    write_json("cases.json", build_cases(tokenizers, bases))


# ---------------------------------------------------------------------------------------------
# Unicode tables for src/engine/unicode_tables.cpp (NFC/NFD and lowercase), from unicodedata.


def canonical_decomposition(cp):
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def make_tables():
    ranges = []  # (first, last, combining class) runs of equal non-zero class
    for cp in range(0x110000):
        ccc = unicodedata.combining(chr(cp))
        if ccc and ranges and ranges[-1][1] == cp - 1 and ranges[-1][2] == ccc:
            ranges[-1][1] = cp
        elif ccc:
            ranges.append([cp, cp, ccc])
    decomp = []  # (code point, first, second or 0): one canonical step, applied recursively
    compose = []  # (first, second, composite) for primary composites
    for cp in range(0x110000):
        if 0xAC00 <= cp <= 0xD7A3:
            continue  # Hangul syllables are algorithmic
        d = canonical_decomposition(cp)
        if d is None:
            continue
        decomp.append((cp, d[0], d[1] if len(d) > 1 else 0))
        if len(d) == 2 and unicodedata.normalize("NFC", chr(d[0]) + chr(d[1])) == chr(cp):
            compose.append((d[0], d[1], cp))
    lower = []  # (code point, lowercase) where the full lowercase is one code point
    lower_multi = []  # (code point, [code points]) where it is longer (U+0130)
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        lo = chr(cp).lower()
        if lo != chr(cp):
            if len(lo) == 1:
                lower.append((cp, ord(lo)))
            else:
                lower_multi.append((cp, [ord(c) for c in lo]))
    compose.sort()
    # Lowercase as runs (first, last, stride, delta): cp in [first, last] step stride maps to
    # cp + delta. Case pairs come in contiguous blocks (stride 1) or alternate (stride 2).
    runs = []
    for cp, lo in lower:
        delta = lo - cp
        if runs:
            first, last, stride, d = runs[-1]
            if d == delta and first == last and cp - last in (1, 2):
                runs[-1] = [first, cp, cp - last, d]
                continue
            if d == delta and first != last and cp - last == stride:
                runs[-1][1] = cp
                continue
        runs.append([cp, cp, 1, delta])

    def rows(items, fmt, per_line):
        out = []
        for i in range(0, len(items), per_line):
            out.append("    " + " ".join(fmt(x) for x in items[i:i + per_line]))
        return "\n".join(out)

    src = f"""// GENERATED by scripts/make_tokenizer_fixtures.py tables from Python {sys.version.split()[0]}'s
// unicodedata (Unicode {unicodedata.unidata_version}). Do not edit. Facts of the Unicode Character Database:
// canonical combining classes, canonical decompositions, primary composites and lowercase mappings.
#include <iterator>

#include "sieve/engine/unicode.h"

namespace sieve::engine::unicode::tables {{

const CombiningRange kCombiningClasses[] = {{
{rows(ranges, lambda r: "{{0x{:X}, 0x{:X}, {}}},".format(*r), 4)}
}};
const std::size_t kCombiningClassesSize = std::size(kCombiningClasses);

const Decomposition kDecompositions[] = {{
{rows(decomp, lambda r: "{{0x{:X}, 0x{:X}, 0x{:X}}},".format(*r), 4)}
}};
const std::size_t kDecompositionsSize = std::size(kDecompositions);

const Composition kCompositions[] = {{
{rows(compose, lambda r: "{{0x{:X}, 0x{:X}, 0x{:X}}},".format(*r), 4)}
}};
const std::size_t kCompositionsSize = std::size(kCompositions);

const CaseRun kLowercase[] = {{
{rows(runs, lambda r: "{{0x{:X}, 0x{:X}, {}, {}}},".format(*r), 4)}
}};
const std::size_t kLowercaseSize = std::size(kLowercase);

}}  // namespace sieve::engine::unicode::tables
"""
    assert lower_multi == [(0x130, [0x69, 0x307])], lower_multi  # handled in code
    path = os.path.join(ROOT, "src", "engine", "unicode_tables.cpp")
    with open(path, "w", encoding="utf-8") as f:
        f.write(src)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes): "
          f"{len(ranges)} ccc ranges, {len(decomp)} decompositions, {len(compose)} composites, "
          f"{len(lower)} lowercase in {len(runs)} runs")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "tables":
        make_tables()
    else:
        make_fixtures()
