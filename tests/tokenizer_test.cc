// ClipTokenizer / T5Tokenizer against the Python tokenizers FluxPipeline uses.
//
// tests/python/tokenizer_reference.py (run with the pinned venv's python) builds small real tokenizer
// files with scripts/ditserve_export/tiny_tokenizers.py and writes the ids that
// transformers.CLIPTokenizer and transformers.T5TokenizerFast produce for a corpus (ASCII, punctuation,
// accents, CJK, emoji, whitespace, digits, contractions, special tokens in the text, long prompts, and a
// sweep over every assigned code point). Every id of every case must match. A Python failure fails the
// test.
//
// The "clip_real" variant is the real CLIP BPE vocabulary (49408 tokens, as in FLUX's tokenizer/), read
// by the script from the open_clip_torch wheel (`pip download --no-deps`, sha256-checked, cached); its
// corpus is FLUX-style prompts, prompts longer than 77 tokens, accents, CJK, emoji, punctuation and
// numbers. If the download fails the script exits non-zero and every test here fails (no skip).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/text/clip_tokenizer.h"
#include "engine/text/t5_tokenizer.h"
#include "support/python_reference.h"
#include "support/test_env.h"

namespace ditserve::text {
namespace {

using nlohmann::json;

using ditserve::testing::PythonReference;
using ditserve::testing::ShowText;

const PythonReference& Ref() {
  static const PythonReference ref = ditserve::testing::RunPythonReference("tests/python/tokenizer_reference.py");
  return ref;
}

// Ids with the trailing padding run abbreviated.
std::string Ids(const std::vector<int64_t>& ids) {
  size_t n = ids.size();
  while (n > 1 && ids[n - 1] == ids[n - 2]) --n;
  std::string s = "[";
  for (size_t i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  if (n < ids.size()) s += " ... x" + std::to_string(ids.size() - n + 1);
  return s + "] (" + std::to_string(ids.size()) + " ids)";
}

// Compares every case; returns the number compared.
template <typename Tok>
size_t CheckCases(const Tok& tok, const json& variant) {
  size_t n = 0, failures = 0;
  for (const json& c : variant.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    const int max_length = c.at("max_length").get<int>();
    const auto expected = c.at("ids").get<std::vector<int64_t>>();
    const auto got = tok.Encode(text, max_length);
    ++n;
    if (got != expected) {
      if (++failures <= 10) {
        ADD_FAILURE() << variant.at("name").get<std::string>() << " text=" << ShowText(text)
                      << " max_length=" << max_length << "\n  expected " << Ids(expected)
                      << "\n  got      " << Ids(got);
      }
    }
  }
  EXPECT_EQ(failures, 0u) << variant.at("name").get<std::string>() << ": " << failures << " of " << n
                          << " cases differ";
  return n;
}

TEST(TokenizerReference, PythonReferenceBuilt) {
  const PythonReference& ref = Ref();
  ASSERT_TRUE(ref.ok) << ref.error;
  // ClipTokenizer follows CLIPTokenizer's no-ftfy clean-up (BasicTokenizer); see clip_tokenizer.h.
  EXPECT_FALSE(ref.data.at("meta").at("ftfy").get<bool>())
      << "ftfy is installed in the reference venv: CLIPTokenizer then uses ftfy.fix_text";
  EXPECT_GE(ref.data.at("clip").size(), 2u);
  EXPECT_GE(ref.data.at("t5").size(), 2u);
}

TEST(ClipTokenizer, MatchesTransformersCLIPTokenizer) {
  const PythonReference& ref = Ref();
  ASSERT_TRUE(ref.ok) << ref.error;
  ASSERT_FALSE(ref.data.at("clip").empty());
  for (const json& v : ref.data.at("clip")) {
    if (v.value("real_vocab", false)) continue;  // MatchesTransformersOnRealClipVocabulary
    SCOPED_TRACE(v.at("name").get<std::string>());
    auto tok = ClipTokenizer::Load(v.at("vocab").get<std::string>(), v.at("merges").get<std::string>());
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    EXPECT_EQ((*tok)->pad_id(), v.at("pad_id").get<int64_t>());
    EXPECT_EQ((*tok)->bos_id(), v.at("bos_id").get<int64_t>());
    EXPECT_EQ((*tok)->eos_id(), v.at("eos_id").get<int64_t>());
    EXPECT_EQ((*tok)->vocab_size(), v.at("vocab_size").get<int64_t>());
    const size_t n = CheckCases(**tok, v);
    EXPECT_GT(n, 100u);
    std::printf("[ %s ] %zu cases compared\n", v.at("name").get<std::string>().c_str(), n);
  }
}

const json* FindVariant(const json& list, const std::string& name) {
  for (const json& v : list) {
    if (v.at("name").get<std::string>() == name) return &v;
  }
  return nullptr;
}

TEST(ClipTokenizer, MatchesTransformersOnRealClipVocabulary) {
  const PythonReference& ref = Ref();
  ASSERT_TRUE(ref.ok) << ref.error;
  const json* v = FindVariant(ref.data.at("clip"), "clip_real");
  ASSERT_NE(v, nullptr) << "reference.json has no clip_real variant (real CLIP vocabulary)";
  ASSERT_TRUE(v->value("real_vocab", false));
  auto tok = ClipTokenizer::Load(v->at("vocab").get<std::string>(), v->at("merges").get<std::string>());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->vocab_size(), 49408);
  EXPECT_EQ((*tok)->bos_id(), 49406);
  EXPECT_EQ((*tok)->eos_id(), 49407);
  EXPECT_EQ((*tok)->pad_id(), 49407);
  EXPECT_EQ((*tok)->vocab_size(), v->at("vocab_size").get<int64_t>());
  // Well-known ids of the real vocabulary (independent of the Python reference).
  const std::vector<int64_t> cat = {49406, 320, 1125, 539, 320, 2368, 49407};
  EXPECT_EQ((*tok)->Encode("a photo of a cat", 7), cat);
  EXPECT_GT(v->at("long_cases").get<int>(), 0) << "no real-vocabulary prompt is longer than 77 tokens";
  const size_t n = CheckCases(**tok, *v);
  EXPECT_GT(n, 300u);
  std::printf("[ clip_real ] %zu real-vocabulary cases compared (open_clip_torch %s, bpe sha256 %s)\n", n,
              v->at("open_clip_version").get<std::string>().c_str(),
              v->at("bpe_sha256").get<std::string>().c_str());
}

TEST(T5Tokenizer, MatchesTransformersT5TokenizerFast) {
  const PythonReference& ref = Ref();
  ASSERT_TRUE(ref.ok) << ref.error;
  ASSERT_FALSE(ref.data.at("t5").empty());
  for (const json& v : ref.data.at("t5")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    auto tok = T5Tokenizer::Load(v.at("model").get<std::string>());
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    EXPECT_EQ((*tok)->pad_id(), v.at("pad_id").get<int64_t>());
    EXPECT_EQ((*tok)->eos_id(), v.at("eos_id").get<int64_t>());
    const size_t n = CheckCases(**tok, v);
    EXPECT_GT(n, 100u);
    std::printf("[ %s ] %zu cases compared\n", v.at("name").get<std::string>().c_str(), n);
  }
}

TEST(Tokenizers, ConcurrentEncodeIsConsistent) {
  const PythonReference& ref = Ref();
  ASSERT_TRUE(ref.ok) << ref.error;
  const json* cvp = FindVariant(ref.data.at("clip"), "clip_multilingual");
  ASSERT_NE(cvp, nullptr);
  const json& cv = *cvp;
  auto clip = ClipTokenizer::Load(cv.at("vocab").get<std::string>(), cv.at("merges").get<std::string>());
  ASSERT_TRUE(clip.ok());
  const json& tv = ref.data.at("t5").back();
  auto t5 = T5Tokenizer::Load(tv.at("model").get<std::string>());
  ASSERT_TRUE(t5.ok());
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (const json* v : {&cv, &tv}) {
        for (const json& c : v->at("cases")) {
          const std::string text = c.at("text").get<std::string>();
          const int L = c.at("max_length").get<int>();
          const auto got = v == &cv ? (*clip)->Encode(text, L) : (*t5)->Encode(text, L);
          if (got != c.at("ids").get<std::vector<int64_t>>()) ++bad[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

TEST(Tokenizers, LoadErrors) {
  auto clip = ClipTokenizer::Load("/nonexistent/vocab.json", "/nonexistent/merges.txt");
  EXPECT_FALSE(clip.ok());
  auto t5 = T5Tokenizer::Load("/nonexistent/spiece.model");
  EXPECT_FALSE(t5.ok());
  const std::string dir = ditserve::testing::MakeTempDir("ditserve-tokbad");
  {
    std::ofstream(dir + "/vocab.json") << "[1, 2]";
    std::ofstream(dir + "/merges.txt") << "#version: 0.2\n";
    std::ofstream(dir + "/spiece.model") << "not a model";
  }
  EXPECT_FALSE(ClipTokenizer::Load(dir + "/vocab.json", dir + "/merges.txt").ok());
  EXPECT_FALSE(T5Tokenizer::Load(dir + "/spiece.model").ok());
}

TEST(ClipTokenizer, ShapeAndSpecialIds) {
  const PythonReference& ref = Ref();
  ASSERT_TRUE(ref.ok) << ref.error;
  const json& v = ref.data.at("clip").front();
  auto tok = ClipTokenizer::Load(v.at("vocab").get<std::string>(), v.at("merges").get<std::string>());
  ASSERT_TRUE(tok.ok());
  const auto ids = (*tok)->Encode("a photo of a cat", 77);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), (*tok)->bos_id());
  EXPECT_EQ((*tok)->pad_id(), (*tok)->eos_id());  // FLUX / CLIP default: pad = <|endoftext|>
  const auto long_ids = (*tok)->Encode(std::string(5000, 'x') + " y", 77);
  ASSERT_EQ(long_ids.size(), 77u);
  EXPECT_EQ(long_ids.back(), (*tok)->eos_id());
}

}  // namespace
}  // namespace ditserve::text
