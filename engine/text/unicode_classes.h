// Unicode character classes of the regexes in tokenizer.json pre-tokenizers, at the Unicode version of
// the Oniguruma that HF `tokenizers` matches them with (see scripts/gen_unicode_classes.py): ICU's own
// \p{L} / \p{N} follow the system ICU's (older) Unicode version.
#pragma once

#include <string>

namespace ditserve::text {

enum class UnicodeClass {
  kLetter,      // \p{L}: general category L*
  kNumber,      // \p{N}: general category N*
  kWhiteSpace,  // Oniguruma's \s: U+0009..U+000D, U+0085 and categories Zs, Zl, Zp (= White_Space)
};

// Unicode version of the kLetter / kNumber tables.
const char* UnicodeClassesVersion();

bool InUnicodeClass(UnicodeClass cls, char32_t cp);

// The class as an ICU regex set, "[\x{41}-\x{5A}...]", or its complement "[^...]".
std::string IcuSetPattern(UnicodeClass cls, bool negated);

}  // namespace ditserve::text
