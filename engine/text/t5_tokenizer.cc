#include "engine/text/t5_tokenizer.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "engine/text/spm_model.h"
#include "engine/text/utf8.h"

namespace ditserve::text {
namespace {

constexpr const char* kMeta = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK, "▁"
constexpr size_t kMetaLen = 3;
bool IsWhiteSpace(char32_t cp) { return u_isUWhiteSpace(static_cast<UChar32>(cp)); }

}  // namespace

namespace {
T5TokenizerOptions::NormStep Step(T5TokenizerOptions::NormStep::Kind kind, bool left = false,
                                  bool right = false, std::string pattern = {}, std::string content = {}) {
  T5TokenizerOptions::NormStep step;
  step.kind = kind;
  step.left = left;
  step.right = right;
  step.pattern = std::move(pattern);
  step.content = std::move(content);
  return step;
}
}  // namespace

T5TokenizerOptions T5TokenizerOptions::FromVocabFile() {
  using Kind = NormStep::Kind;
  T5TokenizerOptions o;
  o.prepend = Prepend::kNever;
  o.normalizer.push_back(Step(Kind::kPrecompiled));
  o.normalizer.push_back(Step(Kind::kStrip, /*left=*/false, /*right=*/true));
  o.normalizer.push_back(Step(Kind::kReplaceSpaceRuns, false, false, "", kMeta));
  return o;
}

StatusOr<T5TokenizerOptions> T5TokenizerOptions::FromTokenizerJson(const std::string& path) {
  using Kind = NormStep::Kind;
  using nlohmann::json;
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  const json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument(path + ": not a JSON object");
  auto unsupported = [&](const std::string& what) {
    return InvalidArgument(path + ": unsupported " + what + " for the T5 tokenizer");
  };
  if (!j.contains("model") || j["model"].value("type", "") != "Unigram") return unsupported("model");

  T5TokenizerOptions o;
  std::vector<json> norms;
  const json& n = j.value("normalizer", json());
  if (n.is_object() && n.value("type", "") == "Sequence") {
    for (const json& x : n.value("normalizers", json::array())) norms.push_back(x);
  } else if (n.is_object()) {
    norms.push_back(n);
  } else if (!n.is_null()) {
    return unsupported("normalizer");
  }
  for (const json& x : norms) {
    if (!x.is_object()) return unsupported("normalizer");
    const std::string type = x.value("type", "");
    if (type == "Precompiled") {
      o.normalizer.push_back(Step(Kind::kPrecompiled));
    } else if (type == "Strip") {
      // tokenizers serialises Strip as {"strip_left", "strip_right"}.
      o.normalizer.push_back(Step(Kind::kStrip, x.value("strip_left", x.value("left", false)),
                                  x.value("strip_right", x.value("right", false))));
    } else if (type == "Replace" && x.contains("pattern") && x["pattern"].is_object()) {
      const json& p = x["pattern"];
      const std::string content = x.value("content", "");
      if (p.contains("Regex") && p["Regex"] == " {2,}") {
        o.normalizer.push_back(Step(Kind::kReplaceSpaceRuns, false, false, "", content));
      } else if (p.contains("String") && p["String"].is_string() && !p["String"].get<std::string>().empty()) {
        o.normalizer.push_back(Step(Kind::kReplaceLiteral, false, false, p["String"].get<std::string>(), content));
      } else {
        return unsupported("Replace pattern " + p.dump());
      }
    } else {
      return unsupported("normalizer " + x.dump().substr(0, 200));
    }
  }

  // Metaspace, or Sequence[WhitespaceSplit, Metaspace] (older T5 tokenizer.json files).
  json pre = j.value("pre_tokenizer", json());
  if (pre.is_object() && pre.value("type", "") == "Sequence") {
    json list = pre.value("pretokenizers", json::array());
    if (list.size() == 2 && list[0].is_object() && list[0].value("type", "") == "WhitespaceSplit") {
      o.whitespace_split = true;
      list.erase(list.begin());
    }
    if (list.size() != 1) return unsupported("pre_tokenizer " + pre.dump());
    pre = list[0];
  }
  if (!pre.is_object() || pre.value("type", "") != "Metaspace" || pre.value("replacement", "") != kMeta ||
      !pre.value("split", true)) {
    return unsupported("pre_tokenizer " + pre.dump());
  }
  if (pre.contains("prepend_scheme")) {
    const std::string scheme = pre["prepend_scheme"].get<std::string>();
    if (scheme == "always") o.prepend = Prepend::kAlways;
    else if (scheme == "first") o.prepend = Prepend::kFirst;
    else if (scheme == "never") o.prepend = Prepend::kNever;
    else return unsupported("prepend_scheme " + scheme);
  } else {  // tokenizers < 0.14 format
    o.prepend = pre.value("add_prefix_space", true) ? Prepend::kAlways : Prepend::kNever;
  }
  return o;
}

StatusOr<std::unique_ptr<T5Tokenizer>> T5Tokenizer::Load(const std::string& spiece_model) {
  const size_t slash = spiece_model.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : spiece_model.substr(0, slash);
  const std::string tokenizer_json = dir + "/tokenizer.json";
  if (std::ifstream(tokenizer_json).good()) {
    ASSIGN_OR_RETURN(T5TokenizerOptions options, T5TokenizerOptions::FromTokenizerJson(tokenizer_json));
    return Load(spiece_model, options);
  }
  return Load(spiece_model, T5TokenizerOptions::FromVocabFile());
}

StatusOr<std::unique_ptr<T5Tokenizer>> T5Tokenizer::Load(const std::string& spiece_model,
                                                         const T5TokenizerOptions& options) {
  ASSIGN_OR_RETURN(SpmModel model, SpmModel::Load(spiece_model));
  auto charsmap = PrecompiledCharsmap::Parse(model.precompiled_charsmap);
  if (!charsmap.ok()) return InvalidArgument(spiece_model + ": " + charsmap.status().message());

  std::unique_ptr<T5Tokenizer> tok(new T5Tokenizer());
  tok->options_ = options;
  tok->charsmap_ = std::move(*charsmap);
  // T5Converter.vocab: spm pieces, then <extra_id_99> ... <extra_id_0> with score 0.
  std::vector<UnigramModel::Entry> vocab;
  vocab.reserve(model.pieces.size() + kNumExtraIds);
  for (const SpmModel::Piece& p : model.pieces) vocab.push_back({p.piece, static_cast<double>(p.score)});
  for (int i = kNumExtraIds - 1; i >= 0; --i) vocab.push_back({"<extra_id_" + std::to_string(i) + ">", 0.0});
  tok->unigram_ = UnigramModel(std::move(vocab), model.unk_id);

  const UnigramModel& uni = tok->unigram_;
  tok->eos_id_ = uni.IdOf("</s>");
  tok->pad_id_ = uni.IdOf("<pad>");
  if (tok->eos_id_ < 0 || tok->pad_id_ < 0) {
    return InvalidArgument(spiece_model + ": T5 vocabulary needs \"</s>\" and \"<pad>\" pieces");
  }

  // Added tokens: spm control / user-defined pieces (converter), then T5TokenizerFast's specials.
  std::vector<std::string> added;
  for (const SpmModel::Piece& p : model.pieces) {
    if (p.type == SpmModel::kControl || p.type == SpmModel::kUserDefined) added.push_back(p.piece);
  }
  for (const char* s : {"</s>", "<unk>", "<pad>"}) added.emplace_back(s);
  for (int i = 0; i < kNumExtraIds; ++i) added.push_back("<extra_id_" + std::to_string(i) + ">");
  for (const std::string& a : added) {
    if (a.empty()) continue;
    const int64_t id = uni.IdOf(a);
    if (id < 0) continue;  // "<unk>" absent from an unusual model: nothing to split on
    const bool dup = std::any_of(tok->added_.begin(), tok->added_.end(),
                                 [&](const auto& e) { return e.first == a; });
    if (!dup) {
      tok->added_.emplace_back(a, id);
      tok->added_first_byte_[static_cast<unsigned char>(a[0])] = true;
    }
  }
  return tok;
}

// The configured normaliser steps (FromVocabFile: Precompiled, Strip(right), Replace(" {2,}", "▁")).
std::string T5Tokenizer::Normalize(const std::string& segment) const {
  using Kind = T5TokenizerOptions::NormStep::Kind;
  std::string s = segment;
  for (const auto& step : options_.normalizer) {
    switch (step.kind) {
      case Kind::kPrecompiled: s = charsmap_.Normalize(s); break;
      case Kind::kStrip: {  // Rust char::is_whitespace == Unicode White_Space
        size_t end = s.size();
        while (step.right && end > 0) {
          const size_t start = utf8::PrevCharStart(s, end);
          char32_t cp = 0;
          if (utf8::SeqLen(s, start, &cp) != end - start || !IsWhiteSpace(cp)) break;
          end = start;
        }
        size_t begin = 0;
        while (step.left && begin < end) {
          char32_t cp = 0;
          const size_t len = utf8::SeqLen(s, begin, &cp);
          if (len == 0 || !IsWhiteSpace(cp)) break;
          begin += len;
        }
        s = s.substr(begin, end - begin);
        break;
      }
      case Kind::kReplaceLiteral: {
        std::string out;
        for (size_t i = 0; i < s.size();) {
          if (s.compare(i, step.pattern.size(), step.pattern) == 0) {
            out += step.content;
            i += step.pattern.size();
          } else {
            out.push_back(s[i++]);
          }
        }
        s = std::move(out);
        break;
      }
      case Kind::kReplaceSpaceRuns: {  // Regex(" {2,}")
        std::string out;
        out.reserve(s.size());
        for (size_t i = 0; i < s.size();) {
          if (s[i] == ' ' && i + 1 < s.size() && s[i + 1] == ' ') {
            while (i < s.size() && s[i] == ' ') ++i;
            out += step.content;
          } else {
            out.push_back(s[i++]);
          }
        }
        s = std::move(out);
        break;
      }
    }
  }
  return s;
}

// Normalizer + Metaspace(prepend_scheme="always", split=true) + Unigram for one non-added segment.
void T5Tokenizer::EncodeSegment(const std::string& segment, bool at_text_start,
                                std::vector<int64_t>* out) const {
  const std::string normalized = Normalize(segment);
  if (!options_.whitespace_split) {
    EncodeMetaspace(normalized, at_text_start, out);
    return;
  }
  // WhitespaceSplit: split on White_Space characters, which are removed.
  size_t piece_start = 0;
  for (size_t i = 0; i <= normalized.size();) {
    char32_t cp = 0;
    const size_t len = i < normalized.size() ? std::max<size_t>(1, utf8::SeqLen(normalized, i, &cp)) : 0;
    if (i == normalized.size() || IsWhiteSpace(cp)) {
      if (i > piece_start) {
        EncodeMetaspace(normalized.substr(piece_start, i - piece_start), at_text_start && piece_start == 0,
                        out);
      }
      if (i == normalized.size()) break;
      piece_start = i + len;
    }
    i += len;
  }
}

// Metaspace(replacement="▁", prepend_scheme, split=true) + Unigram.
void T5Tokenizer::EncodeMetaspace(const std::string& normalized, bool at_text_start,
                                  std::vector<int64_t>* out) const {
  if (normalized.empty()) return;
  std::string s;
  s.reserve(normalized.size() + kMetaLen);
  for (char c : normalized) {
    if (c == ' ') s += kMeta;
    else s.push_back(c);
  }
  using Prepend = T5TokenizerOptions::Prepend;
  const bool prepend = options_.prepend == Prepend::kAlways ||
                       (options_.prepend == Prepend::kFirst && at_text_start);
  if (prepend && s.compare(0, kMetaLen, kMeta) != 0) s.insert(0, kMeta);
  // Split so that each run of "▁" starts a new word (SplitDelimiterBehavior::MergedWithNext).
  size_t word_start = 0;
  bool prev_meta = false;
  for (size_t i = 0; i < s.size();) {
    const bool is_meta = s.compare(i, kMetaLen, kMeta) == 0;
    if (is_meta && !prev_meta && i > word_start) {
      unigram_.Encode(s.substr(word_start, i - word_start), out);
      word_start = i;
    }
    prev_meta = is_meta;
    i += is_meta ? kMetaLen : 1;
  }
  unigram_.Encode(s.substr(word_start), out);
}

std::vector<int64_t> T5Tokenizer::Tokenize(const std::string& raw) const {
  const std::string text = utf8::Sanitize(raw);
  std::vector<int64_t> ids;
  size_t seg_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    // aho-corasick LeftmostLongest over the added tokens.
    size_t best_len = 0;
    int64_t best_id = -1;
    if (!added_first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    for (const auto& [content, id] : added_) {
      if (content.size() > best_len && text.compare(i, content.size(), content) == 0) {
        best_len = content.size();
        best_id = id;
      }
    }
    if (best_len == 0) {
      ++i;
      continue;
    }
    if (i > seg_start) EncodeSegment(text.substr(seg_start, i - seg_start), seg_start == 0, &ids);
    ids.push_back(best_id);
    i += best_len;
    seg_start = i;
  }
  if (seg_start < text.size()) EncodeSegment(text.substr(seg_start), seg_start == 0, &ids);
  return ids;
}

std::vector<int64_t> T5Tokenizer::Encode(const std::string& text, int max_length) const {
  std::vector<int64_t> ids = Tokenize(text);
  if (max_length >= 1 && ids.size() + 1 > static_cast<size_t>(max_length)) {
    ids.resize(static_cast<size_t>(max_length) - 1);
  }
  ids.push_back(eos_id_);
  while (max_length > 0 && ids.size() < static_cast<size_t>(max_length)) ids.push_back(pad_id_);
  return ids;
}

}  // namespace ditserve::text
