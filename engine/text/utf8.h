// Small UTF-8 helpers shared by the tokenizers (header-only).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ditserve::text::utf8 {

// Length of the valid UTF-8 sequence starting at s[i] (1..4), else 0 (bad lead/continuation byte,
// overlong form, surrogate, > U+10FFFF, or truncated). Writes the code point to *cp_out when valid.
inline size_t SeqLen(std::string_view s, size_t i, char32_t* cp_out = nullptr) {
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

// SeqLen, but at least 1 (a stray byte is stepped over as one unit).
inline size_t StepLen(std::string_view s, size_t i) {
  const size_t n = SeqLen(s, i);
  return n == 0 ? 1 : n;
}

// Invalid UTF-8 (which a Python str cannot hold) becomes U+FFFD, one per bad byte.
inline std::string Sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = SeqLen(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

// Offset of the first byte that does not start a valid UTF-8 sequence, or npos if s is valid UTF-8.
inline size_t FindInvalid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = SeqLen(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Appends the UTF-8 encoding of cp (a valid scalar value).
inline void Append(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Start of the last UTF-8 character of s[0, end), end > 0.
inline size_t PrevCharStart(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace ditserve::text::utf8
