// How ditserve and its workers write log lines to stdout: "text" (human) or "json" (one object per
// line: time, level, source, msg; for log collectors such as Docker's json-file driver + Loki/ELK).
#pragma once

#include <string>

#include "ditserve/status.h"

namespace ditserve::server {

// Validates a --log-format / server.log_format value: "text" or "json" (the message names no key).
Status CheckLogFormat(const std::string& format);

// Sets the default spdlog logger's pattern. `source` names the process ("coordinator", "worker g0r1").
void ConfigureLogging(const std::string& format, const std::string& source);

}  // namespace ditserve::server
