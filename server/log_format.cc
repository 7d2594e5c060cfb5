#include "server/log_format.h"

#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

namespace ditserve::server {
namespace {

// %j: the message as a JSON string literal (quotes, escapes; invalid UTF-8 replaced), so a message
// with quotes or newlines still yields one valid JSON object per line.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string s = nlohmann::json(std::string(msg.payload.data(), msg.payload.size()))
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};

}  // namespace

Status CheckLogFormat(const std::string& format) {
  if (format == "text" || format == "json") return Status::Ok();
  return InvalidArgument("\"" + format + "\" is not one of text, json");
}

void ConfigureLogging(const std::string& format, const std::string& source) {
  if (format != "json") {
    spdlog::set_pattern("[%H:%M:%S.%e] [" + source + "] [%l] %v");
    return;
  }
  // source is ours ("coordinator", "worker g0r1"): no characters that need escaping.
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<JsonMessageFlag>('j').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%f%z","level":"%l","source":")" +
                                                source + R"(","msg":%j})");
  spdlog::set_formatter(std::move(f));
}

}  // namespace ditserve::server
