// A warning that any client can trigger at will (a malformed request) must not flood the log: at most
// one line per interval, carrying the count of the lines it stood in for.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace ditserve::server {

class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::steady_clock::duration interval = std::chrono::seconds(10))
      : interval_(interval) {}
  // Logs `message` at warning level unless a line went out less than `interval` ago; returns whether it
  // was logged.
  bool Warn(const std::string& message);
  uint64_t suppressed_total() const;

 private:
  const std::chrono::steady_clock::duration interval_;
  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point last_{};
  bool logged_once_ = false;
  uint64_t suppressed_since_last_ = 0;
  uint64_t suppressed_total_ = 0;
};

}  // namespace ditserve::server
