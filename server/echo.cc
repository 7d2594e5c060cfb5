#include "server/echo.h"

namespace ditserve::server {

std::string Echo(std::string_view value, size_t max_bytes) {
  size_t n = value.size();
  if (n > max_bytes) {
    n = max_bytes;
    // Back up over continuation bytes (10xxxxxx) to the start of the cut sequence.
    while (n > 0 && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80) --n;
  }
  std::string out(value.substr(0, n));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (n < value.size()) out += "... (" + std::to_string(value.size()) + " bytes)";
  return out;
}

}  // namespace ditserve::server
