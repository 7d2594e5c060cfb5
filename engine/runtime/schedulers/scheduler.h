// A diffusers noise scheduler, as the denoise loop drives it: set the timesteps once per request, then
// one Step per denoising step. Implementations reproduce their diffusers class bit for bit where the
// arithmetic allows (see each header) and are built by MakeScheduler from the checkpoint's
// scheduler_config.json (model.json "scheduler"), keyed on its `_class_name`.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ditserve/status.h"

namespace at {
class Tensor;
}  // namespace at

namespace ditserve::runtime {

// What a pipeline passes to set_timesteps.
struct ScheduleRequest {
  int64_t steps = 0;
  std::optional<double> mu;                   // dynamic shifting (FLUX's calculate_shift)
  std::optional<std::vector<double>> sigmas;  // the pipeline's custom sigmas (float64 as in Python)
  uint64_t seed = 0;                          // stochastic schedulers draw their noise from it
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // diffusers' class name, as in scheduler_config.json.
  virtual const char* name() const = 0;
  virtual Status SetTimesteps(const ScheduleRequest& request) = 0;
  // diffusers' scheduler.timesteps after set_timesteps, as float32 (integer schedules are exact).
  virtual const std::vector<float>& timesteps() const = 0;
  int64_t num_inference_steps() const { return static_cast<int64_t>(timesteps().size()); }
  // Step `step_index` (0-based) from `sample` with the model's output: the previous sample, in the model
  // output's dtype. Multistep schedulers keep their history between calls; SetTimesteps resets it.
  virtual at::Tensor Step(const at::Tensor& model_output, int64_t step_index, const at::Tensor& sample) = 0;
};

// The scheduler named by config["_class_name"], configured from the rest of `config`. Errors name
// `where` (e.g. "model.json: scheduler") and the supported classes.
StatusOr<std::unique_ptr<Scheduler>> MakeScheduler(const nlohmann::json& config, const std::string& where);

// The class names MakeScheduler knows.
std::vector<std::string> SchedulerNames();

}  // namespace ditserve::runtime
