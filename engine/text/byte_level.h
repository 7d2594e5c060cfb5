// The byte-level BPE alphabet (GPT-2's bytes_to_unicode): every byte maps to one printable character,
// so BPE vocabularies of CLIP, GPT-2 and Llama-3 are strings over these 256 characters.
#pragma once

#include <array>
#include <string>

#include "engine/text/utf8.h"

namespace ditserve::text {

class ByteLevelAlphabet {
 public:
  // The printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) map to themselves; the
  // other 68 bytes, in byte order, to U+0100, U+0101, ...
  ByteLevelAlphabet() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = direct ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      utf8::Append(cp, &chars_[b]);
    }
  }

  // UTF-8 of the character that stands for byte b.
  const std::string& Char(unsigned char b) const { return chars_[b]; }

  // Appends the characters of every byte of raw.
  void Map(std::string_view raw, std::string* out) const {
    for (unsigned char b : raw) out->append(chars_[b]);
  }

 private:
  std::array<std::string, 256> chars_;
};

}  // namespace ditserve::text
