#include "engine/text/unicode_classes.h"

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace ditserve::text {
namespace {

struct CodeRange {
  char32_t first, last;
};

#include "engine/text/unicode_classes_data.inc"

// White_Space (stable since Unicode 4.1), which is what Oniguruma's \s matches for Unicode strings.
inline constexpr CodeRange kWhiteSpaceRanges[] = {
    {0x9, 0xD}, {0x20, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};

template <size_t N>
bool InRanges(const CodeRange (&ranges)[N], char32_t cp) {
  const CodeRange* it = std::upper_bound(std::begin(ranges), std::end(ranges), cp,
                                         [](char32_t c, const CodeRange& r) { return c < r.first; });
  return it != std::begin(ranges) && cp <= std::prev(it)->last;
}

template <size_t N>
std::string SetPattern(const CodeRange (&ranges)[N], bool negated) {
  std::string out = negated ? "[^" : "[";
  char buf[32];
  for (const CodeRange& r : ranges) {
    if (r.first == r.last) {
      std::snprintf(buf, sizeof(buf), "\\x{%X}", static_cast<unsigned>(r.first));
    } else {
      std::snprintf(buf, sizeof(buf), "\\x{%X}-\\x{%X}", static_cast<unsigned>(r.first),
                    static_cast<unsigned>(r.last));
    }
    out += buf;
  }
  return out + "]";
}

}  // namespace

const char* UnicodeClassesVersion() { return kUnicodeClassesVersion; }

bool InUnicodeClass(UnicodeClass cls, char32_t cp) {
  switch (cls) {
    case UnicodeClass::kLetter: return InRanges(kLetterRanges, cp);
    case UnicodeClass::kNumber: return InRanges(kNumberRanges, cp);
    case UnicodeClass::kWhiteSpace: return InRanges(kWhiteSpaceRanges, cp);
  }
  return false;
}

std::string IcuSetPattern(UnicodeClass cls, bool negated) {
  switch (cls) {
    case UnicodeClass::kLetter: return SetPattern(kLetterRanges, negated);
    case UnicodeClass::kNumber: return SetPattern(kNumberRanges, negated);
    case UnicodeClass::kWhiteSpace: return SetPattern(kWhiteSpaceRanges, negated);
  }
  return "[]";
}

}  // namespace ditserve::text
