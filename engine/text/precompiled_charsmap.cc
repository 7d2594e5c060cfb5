#include "engine/text/precompiled_charsmap.h"

#include <unicode/brkiter.h>
#include <unicode/locid.h>
#include <unicode/unistr.h>

#include <memory>
#include <utility>

#include "engine/text/utf8.h"

namespace ditserve::text {
namespace {

uint32_t ReadU32(const char* p) {
  const auto* q = reinterpret_cast<const uint8_t*>(p);
  return static_cast<uint32_t>(q[0]) | (static_cast<uint32_t>(q[1]) << 8) |
         (static_cast<uint32_t>(q[2]) << 16) | (static_cast<uint32_t>(q[3]) << 24);
}

// darts-clone double-array unit fields.
inline uint32_t UnitOffset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
inline uint32_t UnitLabel(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
inline bool UnitHasLeaf(uint32_t u) { return ((u >> 8) & 1u) != 0; }
inline uint32_t UnitValue(uint32_t u) { return u & ((1u << 31) - 1); }

// Extended grapheme clusters of text (one character each when ICU has no break data).
std::vector<std::string_view> Graphemes(std::string_view text) {
  std::vector<std::string_view> out;
  UErrorCode err = U_ZERO_ERROR;
  std::unique_ptr<icu::BreakIterator> bi(
      icu::BreakIterator::createCharacterInstance(icu::Locale::getRoot(), err));
  if (U_SUCCESS(err) && bi) {
    const icu::UnicodeString u =
        icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
    bi->setText(u);
    // Map UTF-16 break positions back to byte offsets while walking the (valid) UTF-8 text.
    size_t byte = 0;
    int32_t unit = 0;
    int32_t start = bi->first();
    size_t start_byte = 0;
    for (int32_t end = bi->next(); end != icu::BreakIterator::DONE; start = end, end = bi->next()) {
      while (unit < end && byte < text.size()) {
        char32_t cp = 0;
        const size_t len = utf8::SeqLen(text, byte, &cp);
        byte += len == 0 ? 1 : len;
        unit += cp >= 0x10000 ? 2 : 1;
      }
      out.push_back(text.substr(start_byte, byte - start_byte));
      start_byte = byte;
    }
    if (start_byte == text.size()) return out;
    out.clear();  // inconsistent mapping (cannot happen for valid UTF-8): fall back below
  }
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8::StepLen(text, i);
    out.push_back(text.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace

StatusOr<PrecompiledCharsmap> PrecompiledCharsmap::Parse(const std::string& blob) {
  PrecompiledCharsmap m;
  if (blob.empty()) return m;
  if (blob.size() < 4) return InvalidArgument("truncated precompiled_charsmap");
  const uint32_t trie_bytes = ReadU32(blob.data());
  if (trie_bytes == 0 || trie_bytes % 4 != 0 || 4 + static_cast<size_t>(trie_bytes) > blob.size()) {
    return InvalidArgument("bad precompiled_charsmap trie size");
  }
  m.units_.resize(trie_bytes / 4);
  for (size_t i = 0; i < m.units_.size(); ++i) m.units_[i] = ReadU32(blob.data() + 4 + 4 * i);
  m.normalized_ = blob.substr(4 + trie_bytes);
  return m;
}

bool PrecompiledCharsmap::Lookup(std::string_view chunk, std::string_view* replacement) const {
  if (units_.empty()) return false;
  size_t pos = UnitOffset(units_[0]);
  for (const char ch : chunk) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0) return false;
    pos ^= c;
    if (pos >= units_.size()) return false;
    const uint32_t unit = units_[pos];
    if (UnitLabel(unit) != c) return false;
    pos ^= UnitOffset(unit);
    if (UnitHasLeaf(unit)) {  // the leaf's value: offset of the NUL-terminated replacement
      if (pos >= units_.size()) return false;
      const size_t index = UnitValue(units_[pos]);
      if (index > normalized_.size()) return false;
      const size_t nul = normalized_.find('\0', index);
      const size_t end = nul == std::string::npos ? normalized_.size() : nul;
      *replacement = std::string_view(normalized_).substr(index, end - index);
      return true;
    }
  }
  return false;
}

std::string PrecompiledCharsmap::Normalize(std::string_view text) const {
  if (units_.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  std::string_view rep;
  for (const std::string_view g : Graphemes(text)) {
    if (g.size() < 6 && Lookup(g, &rep)) {
      out += rep;
      continue;
    }
    for (size_t i = 0; i < g.size();) {
      const size_t len = utf8::StepLen(g, i);
      const std::string_view ch = g.substr(i, len);
      out += Lookup(ch, &rep) ? rep : ch;
      i += len;
    }
  }
  return out;
}

}  // namespace ditserve::text
