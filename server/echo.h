// Echoing client- or operator-supplied values in error messages and logs, bounded: a 16 KB model name
// echoed whole would push an INVALID_ARGUMENT's message past gRPC's metadata limit (the client then sees
// RESOURCE_EXHAUSTED instead) and flood logs.
#pragma once

#include <string>
#include <string_view>

namespace ditserve::server {

inline constexpr size_t kMaxEchoBytes = 64;

// `value` whole when it is at most `max_bytes`, else its first bytes (never splitting a UTF-8 sequence)
// followed by "... (N bytes)". Control characters become '?', so a value cannot forge log lines.
std::string Echo(std::string_view value, size_t max_bytes = kMaxEchoBytes);

}  // namespace ditserve::server
