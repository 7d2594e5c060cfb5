#include "engine/text/added_vocabulary.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "engine/text/utf8.h"

namespace ditserve::text {
namespace {

// Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, join controls.
bool IsWordChar(char32_t cp) {
  const auto c = static_cast<UChar32>(cp);
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL)) return true;
  const int8_t t = u_charType(c);
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
         t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION;
}

bool IsSpace(char32_t cp) { return u_isUWhiteSpace(static_cast<UChar32>(cp)); }

char32_t FirstChar(std::string_view s) {
  char32_t cp = 0;
  utf8::SeqLen(s, 0, &cp);
  return cp;
}

char32_t LastChar(std::string_view s) {
  char32_t cp = 0;
  utf8::SeqLen(s, utf8::PrevCharStart(s, s.size()), &cp);
  return cp;
}

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    if (t.content.empty()) continue;  // tokenizers ignores empty added tokens
    by_first_byte_[t.normalized ? 1 : 0][static_cast<unsigned char>(t.content[0])].push_back(
        static_cast<int32_t>(i));
  }
  for (auto& pass : by_first_byte_) {
    for (auto& bucket : pass) {
      std::stable_sort(bucket.begin(), bucket.end(), [&](int32_t a, int32_t b) {
        return tokens_[static_cast<size_t>(a)].content.size() > tokens_[static_cast<size_t>(b)].content.size();
      });
    }
  }
}

int64_t AddedVocabulary::IdOf(std::string_view content) const {
  for (const AddedToken& t : tokens_) {
    if (t.content == content) return t.id;
  }
  return -1;
}

void AddedVocabulary::SplitPass(std::string_view text, size_t begin, size_t end, bool normalized,
                                std::vector<Piece>* out) const {
  const std::string_view s = text.substr(begin, end - begin);
  const auto& buckets = by_first_byte_[normalized ? 1 : 0];
  size_t start_offset = 0;  // end of the last emitted piece, relative to s
  size_t search = 0;        // where the matcher resumes: the end of its last match
  while (search < s.size()) {
    // Leftmost-longest: the earliest position where any token matches, the longest one there.
    const AddedToken* hit = nullptr;
    size_t at = search;
    for (; at < s.size() && hit == nullptr; ++at) {
      for (int32_t idx : buckets[static_cast<unsigned char>(s[at])]) {
        const AddedToken& t = tokens_[static_cast<size_t>(idx)];
        if (s.compare(at, t.content.size(), t.content) == 0) {
          hit = &t;
          break;
        }
      }
    }
    if (hit == nullptr) break;
    size_t start = at - 1;
    size_t stop = start + hit->content.size();
    search = stop;
    if (hit->single_word) {
      const bool start_space = start == 0 || !IsWordChar(LastChar(s.substr(0, start)));
      const bool stop_space = stop == s.size() || !IsWordChar(FirstChar(s.substr(stop)));
      if (!start_space || !stop_space) continue;
    }
    if (hit->lstrip) {
      size_t new_start = start;
      while (new_start > 0) {
        const size_t prev = utf8::PrevCharStart(s, new_start);
        if (!IsSpace(FirstChar(s.substr(prev)))) break;
        new_start = prev;
      }
      start = std::max(new_start, start_offset);  // spaces already taken by the previous match stay there
    }
    if (hit->rstrip) {
      while (stop < s.size()) {
        char32_t cp = 0;
        const size_t len = utf8::SeqLen(s, stop, &cp);
        if (len == 0 || !IsSpace(cp)) break;
        stop += len;
      }
    }
    if (start_offset < start) out->push_back(Piece{begin + start_offset, begin + start, -1});
    out->push_back(Piece{begin + start, begin + stop, hit->id});
    start_offset = stop;
  }
  if (start_offset < s.size()) out->push_back(Piece{begin + start_offset, end, -1});
}

std::vector<AddedVocabulary::Piece> AddedVocabulary::Split(std::string_view text) const {
  std::vector<Piece> first;
  if (!text.empty()) SplitPass(text, 0, text.size(), /*normalized=*/false, &first);
  std::vector<Piece> out;
  out.reserve(first.size());
  for (const Piece& p : first) {
    if (p.id >= 0) {
      out.push_back(p);
    } else {
      SplitPass(text, p.begin, p.end, /*normalized=*/true, &out);
    }
  }
  return out;
}

}  // namespace ditserve::text
