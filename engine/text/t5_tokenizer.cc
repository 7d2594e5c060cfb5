#include "engine/text/t5_tokenizer.h"

#include <sentencepiece_processor.h>
#include <unicode/brkiter.h>
#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

namespace ditserve::text {
namespace {

constexpr const char* kMeta = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK, "▁"
constexpr size_t kMetaLen = 3;
constexpr double kUnkPenalty = 10.0;         // tokenizers / sentencepiece K_UNK_PENALTY

// sentencepiece ModelProto.SentencePiece.Type
enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// ---- UTF-8 ---------------------------------------------------------------------------------------

// Length of the UTF-8 sequence starting at s[i] if it is valid, else 0.
size_t Utf8Len(const std::string& s, size_t i, char32_t* cp_out = nullptr) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  char32_t cp = 0;
  if (c < 0x80) { cp = c; len = 1; }
  else if ((c & 0xE0) == 0xC0) { cp = c & 0x1F; len = 2; }
  else if ((c & 0xF0) == 0xE0) { cp = c & 0x0F; len = 3; }
  else if ((c & 0xF8) == 0xF0) { cp = c & 0x07; len = 4; }
  else return 0;
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
  if (cp_out) *cp_out = cp;
  return len;
}

// Invalid UTF-8 (which a Python str cannot hold) becomes U+FFFD, one per bad byte.
std::string SanitizeUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8Len(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s, i, len);
      i += len;
    }
  }
  return out;
}

// Start of the last UTF-8 character of s[0, end).
size_t PrevCharStart(const std::string& s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

// ---- minimal protobuf wire-format reader (ModelProto) --------------------------------------------

class ProtoReader {
 public:
  ProtoReader(const char* data, size_t size)
      : p_(reinterpret_cast<const uint8_t*>(data)), end_(p_ + size) {}
  bool done() const { return p_ >= end_; }
  bool ok() const { return ok_; }

  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return ok_ = false;
      const uint8_t b = *p_++;
      *v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return ok_ = false;
  }
  bool Tag(uint32_t* field, uint32_t* wire) {
    uint64_t t;
    if (!Varint(&t)) return false;
    *field = static_cast<uint32_t>(t >> 3);
    *wire = static_cast<uint32_t>(t & 7);
    return true;
  }
  bool Bytes(const char** data, size_t* size) {
    uint64_t n;
    if (!Varint(&n)) return false;
    if (n > static_cast<uint64_t>(end_ - p_)) return ok_ = false;
    *data = reinterpret_cast<const char*>(p_);
    *size = static_cast<size_t>(n);
    p_ += n;
    return true;
  }
  bool Fixed32(uint32_t* v) {
    if (end_ - p_ < 4) return ok_ = false;
    *v = static_cast<uint32_t>(p_[0]) | (static_cast<uint32_t>(p_[1]) << 8) |
         (static_cast<uint32_t>(p_[2]) << 16) | (static_cast<uint32_t>(p_[3]) << 24);
    p_ += 4;
    return true;
  }
  bool Skip(uint32_t wire) {
    uint64_t v;
    const char* d;
    size_t n;
    switch (wire) {
      case 0: return Varint(&v);
      case 1:
        if (end_ - p_ < 8) return ok_ = false;
        p_ += 8;
        return true;
      case 2: return Bytes(&d, &n);
      case 5: {
        uint32_t f;
        return Fixed32(&f);
      }
      default: return ok_ = false;
    }
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  bool ok_ = true;
};

struct Piece {
  std::string piece;
  float score = 0.0f;
  int type = kNormal;
};

struct ModelInfo {
  std::vector<Piece> pieces;
  int model_type = 1;  // UNIGRAM
  int64_t unk_id = 0;
  std::string precompiled_charsmap;
};

bool ParsePiece(const char* data, size_t size, Piece* piece) {
  ProtoReader r(data, size);
  while (!r.done()) {
    uint32_t field, wire;
    if (!r.Tag(&field, &wire)) return false;
    if (field == 1 && wire == 2) {
      const char* d;
      size_t n;
      if (!r.Bytes(&d, &n)) return false;
      piece->piece.assign(d, n);
    } else if (field == 2 && wire == 5) {
      uint32_t bits;
      if (!r.Fixed32(&bits)) return false;
      std::memcpy(&piece->score, &bits, sizeof bits);
    } else if (field == 3 && wire == 0) {
      uint64_t v;
      if (!r.Varint(&v)) return false;
      piece->type = static_cast<int>(v);
    } else if (!r.Skip(wire)) {
      return false;
    }
  }
  return r.ok();
}

bool ParseTrainerSpec(const char* data, size_t size, ModelInfo* info) {
  ProtoReader r(data, size);
  while (!r.done()) {
    uint32_t field, wire;
    if (!r.Tag(&field, &wire)) return false;
    uint64_t v;
    if (field == 3 && wire == 0) {
      if (!r.Varint(&v)) return false;
      info->model_type = static_cast<int>(v);
    } else if (field == 40 && wire == 0) {
      if (!r.Varint(&v)) return false;
      info->unk_id = static_cast<int32_t>(static_cast<uint32_t>(v));
    } else if (!r.Skip(wire)) {
      return false;
    }
  }
  return r.ok();
}

bool ParseNormalizerSpec(const char* data, size_t size, ModelInfo* info) {
  ProtoReader r(data, size);
  while (!r.done()) {
    uint32_t field, wire;
    if (!r.Tag(&field, &wire)) return false;
    if (field == 2 && wire == 2) {
      const char* d;
      size_t n;
      if (!r.Bytes(&d, &n)) return false;
      info->precompiled_charsmap.assign(d, n);
    } else if (!r.Skip(wire)) {
      return false;
    }
  }
  return r.ok();
}

bool ParseModelProto(const std::string& bytes, ModelInfo* info) {
  ProtoReader r(bytes.data(), bytes.size());
  while (!r.done()) {
    uint32_t field, wire;
    if (!r.Tag(&field, &wire)) return false;
    if (wire == 2 && (field == 1 || field == 2 || field == 3)) {
      const char* d;
      size_t n;
      if (!r.Bytes(&d, &n)) return false;
      if (field == 1) {
        Piece p;
        if (!ParsePiece(d, n, &p)) return false;
        info->pieces.push_back(std::move(p));
      } else if (field == 2) {
        if (!ParseTrainerSpec(d, n, info)) return false;
      } else if (!ParseNormalizerSpec(d, n, info)) {
        return false;
      }
    } else if (!r.Skip(wire)) {
      return false;
    }
  }
  return r.ok();
}

// ---- darts-clone double array (spm precompiled charsmap) -----------------------------------------

inline uint32_t DartsOffset(uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); }
inline uint32_t DartsLabel(uint32_t unit) { return unit & ((1u << 31) | 0xFFu); }
inline bool DartsHasLeaf(uint32_t unit) { return ((unit >> 8) & 1u) == 1u; }
inline uint32_t DartsValue(uint32_t unit) { return unit & ((1u << 31) - 1); }

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
  sentencepiece::SentencePieceProcessor sp;
  const auto st = sp.Load(spiece_model);
  if (!st.ok()) {
    return InvalidArgument("cannot load sentencepiece model " + spiece_model + ": " + st.ToString());
  }
  ModelInfo info;
  if (!ParseModelProto(sp.serialized_model_proto(), &info)) {
    return InvalidArgument(spiece_model + ": malformed sentencepiece ModelProto");
  }
  if (info.model_type != 1) {
    return InvalidArgument(spiece_model + ": not a unigram sentencepiece model (model_type=" +
                           std::to_string(info.model_type) + ")");
  }
  if (info.pieces.empty()) return InvalidArgument(spiece_model + ": no pieces");
  if (info.unk_id < 0 || info.unk_id >= static_cast<int64_t>(info.pieces.size())) {
    return InvalidArgument(spiece_model + ": unk_id out of range");
  }

  std::unique_ptr<T5Tokenizer> tok(new T5Tokenizer());
  tok->options_ = options;
  // T5Converter.vocab: spm pieces, then <extra_id_99> ... <extra_id_0> with score 0.
  std::vector<std::string> vocab;
  for (const Piece& p : info.pieces) {
    vocab.push_back(p.piece);
    tok->scores_.push_back(static_cast<double>(p.score));
  }
  for (int i = kNumExtraIds - 1; i >= 0; --i) {
    vocab.push_back("<extra_id_" + std::to_string(i) + ">");
    tok->scores_.push_back(0.0);
  }
  tok->min_score_ = std::numeric_limits<double>::infinity();
  for (size_t id = 0; id < vocab.size(); ++id) {
    tok->token_to_id_[vocab[id]] = static_cast<int64_t>(id);
    tok->max_piece_bytes_ = std::max(tok->max_piece_bytes_, vocab[id].size());
    tok->min_score_ = std::min(tok->min_score_, tok->scores_[id]);
  }
  tok->unk_id_ = info.unk_id;

  auto id_of = [&](const std::string& s) -> int64_t {
    auto it = tok->token_to_id_.find(s);
    return it == tok->token_to_id_.end() ? -1 : it->second;
  };
  tok->eos_id_ = id_of("</s>");
  tok->pad_id_ = id_of("<pad>");
  if (tok->eos_id_ < 0 || tok->pad_id_ < 0) {
    return InvalidArgument(spiece_model + ": T5 vocabulary needs \"</s>\" and \"<pad>\" pieces");
  }

  // Added tokens: spm control / user-defined pieces (converter), then T5TokenizerFast's specials.
  std::vector<std::string> added;
  for (const Piece& p : info.pieces) {
    if (p.type == kControl || p.type == kUserDefined) added.push_back(p.piece);
  }
  for (const char* s : {"</s>", "<unk>", "<pad>"}) added.emplace_back(s);
  for (int i = 0; i < kNumExtraIds; ++i) added.push_back("<extra_id_" + std::to_string(i) + ">");
  for (const std::string& a : added) {
    if (a.empty()) continue;
    const int64_t id = id_of(a);
    if (id < 0) continue;  // "<unk>" absent from an unusual model: nothing to split on
    const bool dup = std::any_of(tok->added_.begin(), tok->added_.end(),
                                 [&](const auto& e) { return e.first == a; });
    if (!dup) {
      tok->added_.emplace_back(a, id);
      tok->added_first_byte_[static_cast<unsigned char>(a[0])] = true;
    }
  }

  // Precompiled charsmap: [u32 trie size in bytes][trie units][NUL-separated replacements].
  const std::string& cm = info.precompiled_charsmap;
  if (!cm.empty()) {
    if (cm.size() < 4) return InvalidArgument(spiece_model + ": truncated precompiled_charsmap");
    const auto* u = reinterpret_cast<const uint8_t*>(cm.data());
    const uint32_t trie_bytes = u[0] | (u[1] << 8) | (u[2] << 16) | (static_cast<uint32_t>(u[3]) << 24);
    if (trie_bytes % 4 != 0 || trie_bytes == 0 || 4 + static_cast<size_t>(trie_bytes) > cm.size()) {
      return InvalidArgument(spiece_model + ": bad precompiled_charsmap");
    }
    tok->trie_.resize(trie_bytes / 4);
    for (size_t i = 0; i < tok->trie_.size(); ++i) {
      const uint8_t* q = u + 4 + 4 * i;
      tok->trie_[i] = q[0] | (q[1] << 8) | (q[2] << 16) | (static_cast<uint32_t>(q[3]) << 24);
    }
    tok->normalized_ = cm.substr(4 + trie_bytes);
  }
  return tok;
}

// spm_precompiled Precompiled::transform: the replacement of the *first* (shortest) trie prefix match
// of chunk, even when it does not cover the whole chunk.
std::string T5Tokenizer::PrecompiledTransform(const std::string& chunk, bool* found) const {
  *found = false;
  if (trie_.empty()) return {};
  size_t node_pos = 0;
  node_pos ^= DartsOffset(trie_[0]);
  for (unsigned char c : chunk) {
    if (c == 0) break;
    node_pos ^= c;
    if (node_pos >= trie_.size()) return {};
    const uint32_t unit = trie_[node_pos];
    if (DartsLabel(unit) != c) return {};
    node_pos ^= DartsOffset(unit);
    if (DartsHasLeaf(unit)) {
      if (node_pos >= trie_.size()) return {};
      const size_t index = DartsValue(trie_[node_pos]);
      if (index > normalized_.size()) return {};
      size_t end = index;
      while (end < normalized_.size() && normalized_[end] != '\0') ++end;
      *found = true;
      return normalized_.substr(index, end - index);
    }
  }
  return {};
}

// tokenizers' Precompiled normaliser: for each extended grapheme cluster, transform it whole if it is
// shorter than 6 bytes and the trie knows a prefix of it, else transform each character.
std::string T5Tokenizer::ApplyPrecompiled(const std::string& segment) const {
  std::string s;
  if (trie_.empty()) {
    s = segment;
  } else {
    // tokenizers: for each extended grapheme cluster, transform it whole if < 6 bytes, else (or when
    // that finds nothing) transform each character.
    UErrorCode err = U_ZERO_ERROR;
    std::unique_ptr<icu::BreakIterator> bi(
        icu::BreakIterator::createCharacterInstance(icu::Locale::getRoot(), err));
    const icu::UnicodeString u = icu::UnicodeString::fromUTF8(segment);
    std::vector<std::string> graphemes;
    if (U_SUCCESS(err) && bi) {
      bi->setText(u);
      int32_t start = bi->first();
      for (int32_t end = bi->next(); end != icu::BreakIterator::DONE; start = end, end = bi->next()) {
        std::string g;
        u.tempSubStringBetween(start, end).toUTF8String(g);
        graphemes.push_back(std::move(g));
      }
    } else {  // no ICU break data: fall back to one character per cluster
      for (size_t i = 0; i < segment.size();) {
        const size_t len = std::max<size_t>(1, Utf8Len(segment, i));
        graphemes.push_back(segment.substr(i, len));
        i += len;
      }
    }
    s.reserve(segment.size());
    for (const std::string& g : graphemes) {
      bool found = false;
      if (g.size() < 6) {
        std::string r = PrecompiledTransform(g, &found);
        if (found) {
          s += r;
          continue;
        }
      }
      for (size_t i = 0; i < g.size();) {
        const size_t len = std::max<size_t>(1, Utf8Len(g, i));
        const std::string ch = g.substr(i, len);
        std::string r = PrecompiledTransform(ch, &found);
        s += found ? r : ch;
        i += len;
      }
    }
  }
  return s;
}

// The configured normaliser steps (FromVocabFile: Precompiled, Strip(right), Replace(" {2,}", "▁")).
std::string T5Tokenizer::Normalize(const std::string& segment) const {
  using Kind = T5TokenizerOptions::NormStep::Kind;
  std::string s = segment;
  for (const auto& step : options_.normalizer) {
    switch (step.kind) {
      case Kind::kPrecompiled: s = ApplyPrecompiled(s); break;
      case Kind::kStrip: {  // Rust char::is_whitespace == Unicode White_Space
        size_t end = s.size();
        while (step.right && end > 0) {
          const size_t start = PrevCharStart(s, end);
          char32_t cp = 0;
          if (Utf8Len(s, start, &cp) != end - start || !IsWhiteSpace(cp)) break;
          end = start;
        }
        size_t begin = 0;
        while (step.left && begin < end) {
          char32_t cp = 0;
          const size_t len = Utf8Len(s, begin, &cp);
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

// tokenizers Unigram::encode_optimized + fuse_unk, then token -> id.
void T5Tokenizer::EncodeWord(const std::string& word, std::vector<int64_t>* out) const {
  const size_t size = word.size();
  if (size == 0) return;
  struct Node {
    int64_t id = 0;
    double score = 0.0;
    int64_t starts_at = -1;  // -1: None
  };
  std::vector<Node> best(size + 1);
  const double unk_score = min_score_ - kUnkPenalty;
  size_t starts_at = 0;
  while (starts_at < size) {
    const double score_till_here = best[starts_at].score;
    bool has_single_node = false;
    const size_t mblen = std::max<size_t>(1, Utf8Len(word, starts_at));
    const size_t max_len = std::min(max_piece_bytes_, size - starts_at);
    for (size_t len = 1; len <= max_len; ++len) {  // common prefix search, shortest first
      auto it = token_to_id_.find(word.substr(starts_at, len));
      if (it == token_to_id_.end()) continue;
      const size_t key_pos = starts_at + len;
      const double candidate = scores_[it->second] + score_till_here;
      Node& target = best[key_pos];
      if (target.starts_at < 0 || candidate > target.score) {
        target.score = candidate;
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = it->second;
      }
      if (len == mblen) has_single_node = true;
    }
    if (!has_single_node) {
      Node& target = best[starts_at + mblen];
      const double candidate = unk_score + score_till_here;
      if (target.starts_at < 0 || candidate > target.score) {
        target.score = candidate;
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = unk_id_;
      }
    }
    starts_at += mblen;
  }
  // Backtrack; consecutive unk nodes are fused into one token string.
  std::vector<std::string> tokens;
  std::vector<std::string> unk_parts;
  auto flush_unk = [&]() {
    if (unk_parts.empty()) return;
    std::string fused;
    for (auto it = unk_parts.rbegin(); it != unk_parts.rend(); ++it) fused += *it;
    tokens.push_back(std::move(fused));
    unk_parts.clear();
  };
  size_t ends_at = size;
  while (ends_at > 0) {
    const Node& node = best[ends_at];
    const auto start = static_cast<size_t>(node.starts_at);
    if (node.id == unk_id_) {
      unk_parts.push_back(word.substr(start, ends_at - start));
    } else {
      flush_unk();
      tokens.push_back(word.substr(start, ends_at - start));
    }
    ends_at = start;
  }
  flush_unk();
  for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) {
    auto found = token_to_id_.find(*it);
    out->push_back(found == token_to_id_.end() ? unk_id_ : found->second);
  }
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
    const size_t len = i < normalized.size() ? std::max<size_t>(1, Utf8Len(normalized, i, &cp)) : 0;
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
      EncodeWord(s.substr(word_start, i - word_start), out);
      word_start = i;
    }
    prev_meta = is_meta;
    i += is_meta ? kMetaLen : 1;
  }
  EncodeWord(s.substr(word_start), out);
}

std::vector<int64_t> T5Tokenizer::Tokenize(const std::string& raw) const {
  const std::string text = SanitizeUtf8(raw);
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
