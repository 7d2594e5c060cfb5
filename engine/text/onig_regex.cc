#include "engine/text/onig_regex.h"

#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <string>

#include "engine/text/unicode_classes.h"
#include "engine/text/utf8.h"

namespace ditserve::text {
namespace {

bool IsAsciiAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

Status Unsupported(const std::string& pattern, size_t pos, const std::string& what) {
  return InvalidArgument("regex " + pattern + ": unsupported " + what + " at offset " + std::to_string(pos) +
                         " (supported: literals, groups, quantifiers, look-arounds, sets, (?i:...), "
                         "\\p{L} \\p{N} \\s \\S and the escapes \\r \\n \\t \\f \\e \\a \\xHH)");
}

}  // namespace

StatusOr<std::string> OnigToIcuPattern(const std::string& p) {
  std::string out;
  out.reserve(p.size());
  int set_depth = 0;  // inside [...] (sets nest in both engines)
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) return Unsupported(p, i, "trailing backslash");
      const char n = p[++i];
      if (n == 'p' || n == 'P') {
        std::string name;
        if (i + 1 < p.size() && p[i + 1] == '{') {
          const size_t close = p.find('}', i + 2);
          if (close == std::string::npos) return Unsupported(p, i - 1, "unterminated \\p{");
          name = p.substr(i + 2, close - i - 2);
          i = close;
        } else if (i + 1 < p.size()) {
          name = p.substr(++i, 1);
        }
        bool negated = n == 'P';
        if (!name.empty() && name[0] == '^') {
          negated = !negated;
          name.erase(0, 1);
        }
        if (name == "L" || name == "Letter") {
          out += IcuSetPattern(UnicodeClass::kLetter, negated);
        } else if (name == "N" || name == "Number") {
          out += IcuSetPattern(UnicodeClass::kNumber, negated);
        } else {
          return Unsupported(p, i, std::string("class \\") + n + "{" + name + "}");
        }
      } else if (n == 's' || n == 'S') {
        out += IcuSetPattern(UnicodeClass::kWhiteSpace, n == 'S');
      } else if (n == 'r' || n == 'n' || n == 't' || n == 'f' || n == 'e' || n == 'a' || n == 'x') {
        out += '\\';
        out += n;
      } else if (!IsAsciiAlnum(n) && static_cast<unsigned char>(n) < 0x80) {
        out += '\\';  // escaped punctuation or space: a literal in both engines
        out += n;
      } else {
        return Unsupported(p, i - 1, std::string("escape \\") + n);
      }
      continue;
    }
    if (c == '[') {
      if (i + 1 < p.size() && p[i + 1] == ':') return Unsupported(p, i, "POSIX bracket [:");
      ++set_depth;
    } else if (c == ']' && set_depth > 0) {
      --set_depth;
    } else if (set_depth == 0 && (c == '^' || c == '$' || c == '.')) {
      return Unsupported(p, i, std::string("'") + c + "' (line semantics differ between the engines)");
    }
    out += c;
  }
  return out;
}

StatusOr<OnigRegex> OnigRegex::Compile(const std::string& pattern, bool literal) {
  OnigRegex re;
  if (literal) {
    re.icu_pattern_ = pattern;
  } else {
    ASSIGN_OR_RETURN(re.icu_pattern_, OnigToIcuPattern(pattern));
  }
  if (utf8::FindInvalid(re.icu_pattern_) != std::string_view::npos) {
    return InvalidArgument("regex " + pattern + ": not valid UTF-8");
  }
  UParseError parse_error{};
  UErrorCode status = U_ZERO_ERROR;
  re.pattern_.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(re.icu_pattern_),
                                               literal ? UREGEX_LITERAL : 0, parse_error, status));
  if (U_FAILURE(status) || re.pattern_ == nullptr) {
    return InvalidArgument("regex " + pattern + ": ICU cannot compile it (" + u_errorName(status) +
                           " at offset " + std::to_string(parse_error.offset) + ")");
  }
  return re;
}

OnigRegex::OnigRegex(OnigRegex&&) noexcept = default;
OnigRegex& OnigRegex::operator=(OnigRegex&&) noexcept = default;
OnigRegex::~OnigRegex() = default;

Status OnigRegex::FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const {
  // ICU matches UTF-16; byte_at[k] is the UTF-8 offset of UTF-16 unit k (and byte_at[len] = size).
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  std::vector<uint32_t> byte_at;
  byte_at.reserve(static_cast<size_t>(u.length()) + 1);
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8::StepLen(text, i);
    byte_at.push_back(static_cast<uint32_t>(i));
    if (len == 4) byte_at.push_back(static_cast<uint32_t>(i));  // the low surrogate of U+10000..
    i += len;
  }
  byte_at.push_back(static_cast<uint32_t>(text.size()));

  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(u, status));
  while (U_SUCCESS(status) && m->find(status)) {
    const int32_t b = m->start(status);
    const int32_t e = m->end(status);
    if (U_SUCCESS(status) && e > b) {
      out->emplace_back(byte_at[static_cast<size_t>(b)], byte_at[static_cast<size_t>(e)]);
    }
  }
  // e.g. U_REGEX_STACK_OVERFLOW on pathological input: an error, never a silently shorter split.
  if (U_FAILURE(status)) return Internal(std::string("regex match failed: ") + u_errorName(status));
  return Status::Ok();
}

}  // namespace ditserve::text
