// A regex from tokenizer.json (HF `tokenizers` compiles it with Oniguruma) run with ICU's regex engine.
//
// Both are backtracking Perl-style engines (leftmost match, first alternative wins), so a pattern means
// the same in both once its character classes mean the same: \p{L}, \p{N}, \s, \S are replaced by
// explicit sets at tokenizers' Unicode version (unicode_classes.h); other escapes that name Unicode
// classes (\w, \d, \h, \b, \p{Lu}, POSIX brackets, ...) and the anchors / dot whose line semantics
// differ (^ $ . outside a set) are refused with an error naming them. The pre-tokenizers of GPT-2,
// Llama-3 and Qwen2 use only the supported subset. Case-insensitive groups use ICU's case folding.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unicode/uversion.h>

#include "ditserve/status.h"

U_NAMESPACE_BEGIN
class RegexPattern;
U_NAMESPACE_END

namespace ditserve::text {

class OnigRegex {
 public:
  // pattern: an Oniguruma regex, or (literal) a plain string to find.
  static StatusOr<OnigRegex> Compile(const std::string& pattern, bool literal);

  OnigRegex(OnigRegex&&) noexcept;
  OnigRegex& operator=(OnigRegex&&) noexcept;
  ~OnigRegex();

  // Non-overlapping leftmost matches in text (valid UTF-8) as [begin, end) byte offsets, left to
  // right; empty matches are left out. Thread-safe.
  Status FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;

  // The pattern handed to ICU (for error messages and tests).
  const std::string& icu_pattern() const { return icu_pattern_; }

 private:
  OnigRegex() = default;
  std::unique_ptr<icu::RegexPattern> pattern_;
  std::string icu_pattern_;
};

// The Oniguruma pattern rewritten for ICU (see above), or InvalidArgument naming what is unsupported.
StatusOr<std::string> OnigToIcuPattern(const std::string& pattern);

}  // namespace ditserve::text
