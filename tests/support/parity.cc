#include "support/parity.h"

#include <algorithm>
#include <cmath>

namespace ditserve::testing {

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

double RelError(const std::vector<float>& got, const float* want, size_t n) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(got[i]) - double(want[i]);
    diff += d * d;
    ref += double(want[i]) * double(want[i]);
  }
  return std::sqrt(diff) / std::max(std::sqrt(ref), 1e-30);
}

}  // namespace ditserve::testing
