// MakeScheduler: the one table of scheduler classes, keyed on diffusers' `_class_name`.
#include <functional>

#include <nlohmann/json.hpp>

#include "engine/runtime/schedulers/cogvideox_ddim.h"
#include "engine/runtime/schedulers/flow_match_euler.h"
#include "engine/runtime/schedulers/scheduler.h"

namespace ditserve::runtime {
namespace {

using Maker = std::function<StatusOr<std::unique_ptr<Scheduler>>(const nlohmann::json&, const std::string&)>;

template <typename S, typename Config>
Maker MakerOf() {
  return [](const nlohmann::json& j, const std::string& where) -> StatusOr<std::unique_ptr<Scheduler>> {
    ASSIGN_OR_RETURN(Config config, Config::FromJson(j, where));
    return std::unique_ptr<Scheduler>(std::make_unique<S>(std::move(config)));
  };
}

const std::vector<std::pair<std::string, Maker>>& Schedulers() {
  static const auto* table = new std::vector<std::pair<std::string, Maker>>{
      {FlowMatchEulerScheduler::kClassName, MakerOf<FlowMatchEulerScheduler, FlowMatchEulerConfig>()},
      {CogVideoXDDIMScheduler::kClassName, MakerOf<CogVideoXDDIMScheduler, CogVideoXSchedulerConfig>()},
      {CogVideoXDPMScheduler::kClassName, MakerOf<CogVideoXDPMScheduler, CogVideoXSchedulerConfig>()},
  };
  return *table;
}

}  // namespace

std::vector<std::string> SchedulerNames() {
  std::vector<std::string> names;
  for (const auto& [name, _] : Schedulers()) names.push_back(name);
  return names;
}

StatusOr<std::unique_ptr<Scheduler>> MakeScheduler(const nlohmann::json& config, const std::string& where) {
  if (!config.is_object()) return InvalidArgument(where + " must be an object");
  const auto it = config.find("_class_name");
  if (it == config.end() || !it->is_string()) return InvalidArgument(where + "._class_name is missing");
  const std::string name = it->get<std::string>();
  std::string known;
  for (const auto& [n, make] : Schedulers()) {
    if (n == name) return make(config, where);
    known += (known.empty() ? "" : ", ") + n;
  }
  return InvalidArgument(where + "._class_name " + name + " is not supported (supported: " + known + ")");
}

}  // namespace ditserve::runtime
