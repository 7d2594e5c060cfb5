// Fuzzes the daemon's config parser (server/config.h): any text must parse or give INVALID_ARGUMENT, never
// crash, hang or throw (the 1e752 number overflow once threw out of ParseConfig).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = ditserve::server::ParseConfig(std::string(reinterpret_cast<const char*>(data), size), "/etc/ditserve");
  if (!c.ok() && c.status().code() != ditserve::StatusCode::kInvalidArgument) abort();
  if (!c.ok() && c.status().message().size() > 4096) abort();  // bounded echoes
  return 0;
}
