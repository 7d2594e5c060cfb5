#include "server/rate_limited_log.h"

#include <spdlog/spdlog.h>

namespace ditserve::server {

bool RateLimitedLog::Warn(const std::string& message) {
  uint64_t suppressed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (logged_once_ && now - last_ < interval_) {
      ++suppressed_since_last_;
      ++suppressed_total_;
      return false;
    }
    logged_once_ = true;
    last_ = now;
    suppressed = suppressed_since_last_;
    suppressed_since_last_ = 0;
  }
  if (suppressed > 0) {
    spdlog::warn("{} ({} similar message(s) suppressed)", message, suppressed);
  } else {
    spdlog::warn("{}", message);
  }
  return true;
}

uint64_t RateLimitedLog::suppressed_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return suppressed_total_;
}

}  // namespace ditserve::server
