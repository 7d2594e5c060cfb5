#include "engine/text/clip_tokenizer.h"

#include "engine/text/utf8.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

namespace ditserve::text {
namespace {

constexpr const char* kBos = "<|startoftext|>";
constexpr const char* kEos = "<|endoftext|>";  // also CLIPTokenizer's default unk and pad token
constexpr size_t kMaxCacheEntries = 1 << 16;
// CLIPTokenizer reads merges.txt as read().strip().split("\n")[1 : 49152 - 256 - 2 + 1].
constexpr size_t kMaxMerges = 49152 - 256 - 2;

// ---- UTF-8 ---------------------------------------------------------------------------------------

std::u32string DecodeUtf8(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    const size_t len = utf8::SeqLen(s, i, &cp);
    if (len == 0) {  // invalid UTF-8 (cannot reach Python as str): U+FFFD, which the clean-up drops
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

std::string EncodeUtf8(const std::u32string& s, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) utf8::Append(s[i], &out);
  return out;
}

// ---- Python-compatible character properties ------------------------------------------------------

// unicodedata.category() of Python 3.11 (Unicode 14.0): ICU's category, except that characters
// assigned after Unicode 14.0 are unassigned (Cn) for Python.
int8_t PyCategory(char32_t cp) {
  UVersionInfo age;
  u_charAge(static_cast<UChar32>(cp), age);
  if (age[0] > 14) return U_UNASSIGNED;
  return u_charType(static_cast<UChar32>(cp));
}

bool IsCategoryC(int8_t cat) {
  return cat == U_UNASSIGNED || cat == U_CONTROL_CHAR || cat == U_FORMAT_CHAR ||
         cat == U_PRIVATE_USE_CHAR || cat == U_SURROGATE;
}
bool IsCategoryL(int8_t cat) {
  return cat == U_UPPERCASE_LETTER || cat == U_LOWERCASE_LETTER || cat == U_TITLECASE_LETTER ||
         cat == U_MODIFIER_LETTER || cat == U_OTHER_LETTER;
}
bool IsCategoryN(int8_t cat) {
  return cat == U_DECIMAL_DIGIT_NUMBER || cat == U_LETTER_NUMBER || cat == U_OTHER_NUMBER;
}

// str.isspace(): bidirectional class WS, B or S, or category Zs.
bool PyIsSpace(char32_t cp) {
  const int8_t cat = PyCategory(cp);
  if (cat == U_SPACE_SEPARATOR) return true;
  if (cat == U_UNASSIGNED) return false;
  const UCharDirection d = u_charDirection(static_cast<UChar32>(cp));
  return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR || d == U_SEGMENT_SEPARATOR;
}

// BasicTokenizer._is_chinese_char
bool IsCjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

icu::UnicodeString ToIcu(const std::u32string& s, size_t begin, size_t end) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(s.data() + begin),
                                       static_cast<int32_t>(end - begin));
}

void AppendFromIcu(const icu::UnicodeString& u, std::u32string* out) {
  for (int32_t i = 0; i < u.length();) {
    const UChar32 c = u.char32At(i);
    out->push_back(static_cast<char32_t>(c));
    i += U16_LENGTH(c);
  }
}

// BasicTokenizer(do_lower_case=True, tokenize_chinese_chars=True, strip_accents=False,
// do_split_on_punc=False).tokenize(text), joined with " ".
std::u32string BasicClean(const std::u32string& text) {
  // _clean_text + _tokenize_chinese_chars
  std::u32string cleaned;
  cleaned.reserve(text.size());
  for (char32_t cp : text) {
    if (cp == 0 || cp == 0xFFFD) continue;
    if (cp == U'\t' || cp == U'\n' || cp == U'\r' || cp == U' ') {
      cleaned.push_back(U' ');
      continue;
    }
    const int8_t cat = PyCategory(cp);
    if (IsCategoryC(cat)) continue;
    if (cat == U_SPACE_SEPARATOR) {
      cleaned.push_back(U' ');
    } else if (IsCjk(cp)) {
      cleaned.push_back(U' ');
      cleaned.push_back(cp);
      cleaned.push_back(U' ');
    } else {
      cleaned.push_back(cp);
    }
  }
  // unicodedata.normalize("NFC", text)
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
  std::u32string normalized;
  if (U_SUCCESS(err)) {
    icu::UnicodeString u = ToIcu(cleaned, 0, cleaned.size());
    icu::UnicodeString n = nfc->normalize(u, err);
    if (U_SUCCESS(err)) AppendFromIcu(n, &normalized);
  }
  if (U_FAILURE(err)) normalized = cleaned;  // ICU data missing: cannot happen with libicu installed

  // whitespace_tokenize (str.split()), lower() each word, " ".join
  std::u32string out;
  out.reserve(normalized.size());
  size_t i = 0;
  const size_t n = normalized.size();
  while (i < n) {
    while (i < n && PyIsSpace(normalized[i])) ++i;
    if (i >= n) break;
    size_t j = i;
    while (j < n && !PyIsSpace(normalized[j])) ++j;
    icu::UnicodeString word = ToIcu(normalized, i, j);
    word.toLower(icu::Locale::getRoot());  // full case mapping incl. final sigma, like str.lower()
    if (!out.empty()) out.push_back(U' ');
    AppendFromIcu(word, &out);
    i = j;
  }
  return out;
}

// Character classes of CLIP's pattern as the `regex` module evaluates them with IGNORECASE: U+0345
// (COMBINING GREEK YPOGEGRAMMENI, case-folds to a letter) then matches none of the three classes.
enum class CharClass { kSpace, kLetter, kNumber, kOther, kNone };

CharClass Classify(char32_t cp) {
  if (PyIsSpace(cp)) return CharClass::kSpace;
  if (cp == 0x345) return CharClass::kNone;
  const int8_t cat = PyCategory(cp);
  if (IsCategoryL(cat)) return CharClass::kLetter;
  if (IsCategoryN(cat)) return CharClass::kNumber;
  return CharClass::kOther;
}

// Case-insensitive (simple case folding, as `regex` IGNORECASE) match of an ASCII literal at pos.
bool MatchCi(const std::u32string& s, size_t pos, const char* lit) {
  for (size_t k = 0; lit[k] != '\0'; ++k, ++pos) {
    if (pos >= s.size()) return false;
    const char32_t c = s[pos];
    const char l = lit[k];
    if (c == static_cast<char32_t>(l)) continue;
    if (l >= 'a' && l <= 'z') {
      if (c == static_cast<char32_t>(l - 'a' + 'A')) continue;
      if (l == 's' && c == 0x17F) continue;  // LATIN SMALL LETTER LONG S folds to 's'
      if (l == 'k' && c == 0x212A) continue;  // KELVIN SIGN folds to 'k'
    }
    return false;
  }
  return true;
}

size_t LiteralLength(const char* lit) {
  size_t n = 0;
  while (lit[n] != '\0') ++n;
  return n;
}

// re.findall(CLIP pattern, text): [begin, end) code point ranges.
std::vector<std::pair<size_t, size_t>> PreTokenize(const std::u32string& s) {
  static const char* const kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  std::vector<std::pair<size_t, size_t>> out;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    size_t len = 0;
    if (MatchCi(s, i, kBos)) {
      len = LiteralLength(kBos);
    } else if (MatchCi(s, i, kEos)) {
      len = LiteralLength(kEos);
    } else if (s[i] == U'\'') {
      for (const char* c : kContractions) {
        if (MatchCi(s, i, c)) {
          len = LiteralLength(c);
          break;
        }
      }
    }
    if (len == 0) {
      const CharClass cls = Classify(s[i]);
      if (cls == CharClass::kLetter || cls == CharClass::kOther) {
        size_t j = i + 1;
        while (j < n && Classify(s[j]) == cls) ++j;
        len = j - i;
      } else if (cls == CharClass::kNumber) {
        len = 1;
      }
    }
    if (len == 0) {
      ++i;  // whitespace (or U+0345): not part of any match
    } else {
      out.emplace_back(i, i + len);
      i += len;
    }
  }
  return out;
}

Status ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Internal("cannot read " + path);
  *out = ss.str();
  return Status::Ok();
}

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

StatusOr<std::unique_ptr<ClipTokenizer>> ClipTokenizer::Load(const std::string& vocab_json,
                                                             const std::string& merges_txt) {
  std::unique_ptr<ClipTokenizer> tok(new ClipTokenizer());

  std::string vocab_text;
  RETURN_IF_ERROR(ReadFile(vocab_json, &vocab_text));
  nlohmann::json vocab = nlohmann::json::parse(vocab_text, nullptr, /*allow_exceptions=*/false);
  if (vocab.is_discarded() || !vocab.is_object()) {
    return InvalidArgument(vocab_json + ": not a JSON object");
  }
  tok->vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) {
      return InvalidArgument(vocab_json + ": id of token '" + it.key() + "' is not an integer");
    }
    tok->vocab_[it.key()] = it.value().get<int64_t>();
  }
  if (tok->vocab_.empty()) return InvalidArgument(vocab_json + ": empty vocabulary");

  std::string merges;
  RETURN_IF_ERROR(ReadFile(merges_txt, &merges));
  // Python text mode: universal newlines, then .strip().split("\n")[1 : 1 + kMaxMerges].
  std::string text;
  text.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    if (merges[i] == '\r') {
      text.push_back('\n');
      if (i + 1 < merges.size() && merges[i + 1] == '\n') ++i;
    } else {
      text.push_back(merges[i]);
    }
  }
  size_t b = 0, e = text.size();
  while (b < e && IsAsciiSpace(text[b])) ++b;
  while (e > b && IsAsciiSpace(text[e - 1])) --e;
  text = text.substr(b, e - b);
  std::vector<std::string> lines;
  {
    size_t start = 0;
    while (true) {
      const size_t nl = text.find('\n', start);
      lines.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  for (size_t li = 1; li < lines.size() && li <= kMaxMerges; ++li) {
    std::vector<std::string> parts;  // merge.split()
    const std::string& line = lines[li];
    size_t p = 0;
    while (p < line.size()) {
      while (p < line.size() && IsAsciiSpace(line[p])) ++p;
      if (p >= line.size()) break;
      size_t q = p;
      while (q < line.size() && !IsAsciiSpace(line[q])) ++q;
      parts.push_back(line.substr(p, q - p));
      p = q;
    }
    if (parts.size() != 2) continue;  // such a "merge" can never match a pair (but keeps its rank)
    tok->bpe_ranks_[parts[0] + " " + parts[1]] = static_cast<int>(li - 1);  // later duplicates win
  }

  // Special tokens: ids from the vocabulary, or appended after it like PreTrainedTokenizer._add_tokens.
  int64_t next_id = static_cast<int64_t>(tok->vocab_.size());
  for (const char* special : {kBos, kEos}) {
    auto it = tok->vocab_.find(special);
    tok->added_[special] = it != tok->vocab_.end() ? it->second : next_id++;
  }
  tok->bos_id_ = tok->added_[kBos];
  tok->eos_id_ = tok->added_[kEos];
  tok->pad_id_ = tok->eos_id_;
  tok->unk_id_ = tok->eos_id_;

  return tok;
}

int64_t ClipTokenizer::TokenToId(const std::string& token) const {
  if (auto it = added_.find(token); it != added_.end()) return it->second;
  if (auto it = vocab_.find(token); it != vocab_.end()) return it->second;
  return unk_id_;
}

void ClipTokenizer::Bpe(const std::string& word, std::vector<int64_t>* out) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::string> symbols;
  symbols.reserve(word.size());
  for (unsigned char c : word) symbols.push_back(alphabet_.Char(c));
  symbols.back() += "</w>";

  std::string key;
  while (symbols.size() > 1) {
    int best_rank = INT_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      key.assign(symbols[i]).append(" ").append(symbols[i + 1]);
      auto it = bpe_ranks_.find(key);
      if (it != bpe_ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == INT_MAX) break;
    const std::string first = symbols[best];
    const std::string second = symbols[best + 1];
    std::vector<std::string> merged;
    merged.reserve(symbols.size());
    for (size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(std::move(symbols[i]));
        i += 1;
      }
    }
    symbols = std::move(merged);
  }

  std::vector<int64_t> ids;
  ids.reserve(symbols.size());
  for (const std::string& s : symbols) ids.push_back(TokenToId(s));
  out->insert(out->end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(word, std::move(ids));
}

void ClipTokenizer::TokenizeChunk(const std::u32string& chunk, std::vector<int64_t>* out) const {
  const std::u32string text = BasicClean(chunk);
  for (const auto& [b, e] : PreTokenize(text)) {
    const std::string token = EncodeUtf8(text, b, e);
    // bpe() has "<|startoftext|>" / "<|endoftext|>" pre-cached as themselves.
    if (token == kBos || token == kEos) {
      out->push_back(TokenToId(token));
    } else {
      Bpe(token, out);
    }
  }
}

std::vector<int64_t> ClipTokenizer::Tokenize(const std::string& utf8) const {
  const std::u32string text = DecodeUtf8(utf8);
  static const std::u32string kSpecials[] = {U"<|startoftext|>", U"<|endoftext|>"};
  std::vector<int64_t> ids;
  // PreTrainedTokenizer.tokenize: split on the added tokens (exact, case-sensitive) first.
  size_t chunk_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const std::u32string* hit = nullptr;
    if (text[i] == U'<') {
      for (const auto& sp : kSpecials) {
        if (text.compare(i, sp.size(), sp) == 0) {
          hit = &sp;
          break;
        }
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    if (i > chunk_start) TokenizeChunk(text.substr(chunk_start, i - chunk_start), &ids);
    std::string utf8_special;
    for (char32_t c : *hit) utf8::Append(c, &utf8_special);
    ids.push_back(TokenToId(utf8_special));
    i += hit->size();
    chunk_start = i;
  }
  if (chunk_start < text.size()) TokenizeChunk(text.substr(chunk_start), &ids);
  return ids;
}

std::vector<int64_t> ClipTokenizer::Encode(const std::string& text, int max_length) const {
  std::vector<int64_t> ids = Tokenize(text);
  // truncation=True (longest_first, right side); transformers skips truncation when it would have to
  // remove every token (max_length <= 2).
  if (max_length > 2 && ids.size() + 2 > static_cast<size_t>(max_length)) {
    ids.resize(static_cast<size_t>(max_length) - 2);
  }
  std::vector<int64_t> out;
  out.reserve(std::max<size_t>(ids.size() + 2, max_length > 0 ? max_length : 0));
  out.push_back(bos_id_);
  out.insert(out.end(), ids.begin(), ids.end());
  out.push_back(eos_id_);
  while (max_length > 0 && out.size() < static_cast<size_t>(max_length)) out.push_back(pad_id_);
  return out;
}

}  // namespace ditserve::text
