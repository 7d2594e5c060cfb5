// FlowMatchEulerDiscreteScheduler as diffusers 0.34 computes it (the deterministic Euler path used by
// FLUX and the other flow-matching DiT pipelines). Precision follows diffusers: numpy float64 where
// diffusers uses float64, float32 where it uses float32 numpy/torch, so sigmas/timesteps match bit for bit.
// The schedule is computed without libtorch (tests use it torch-free); only Step touches tensors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ditserve/status.h"
#include "engine/runtime/schedulers/scheduler.h"

namespace ditserve::runtime {

struct FlowMatchEulerConfig {
  int64_t num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5;
  double max_shift = 1.15;
  int64_t base_image_seq_len = 256;
  int64_t max_image_seq_len = 4096;
  bool invert_sigmas = false;
  std::optional<double> shift_terminal;
  std::string time_shift_type = "exponential";  // or "linear"

  // From diffusers' scheduler_config.json contents (model.json "scheduler"). Unsupported options
  // (karras/exponential/beta sigmas, stochastic sampling) are rejected. `where` prefixes errors.
  static StatusOr<FlowMatchEulerConfig> FromJson(const nlohmann::json& j, const std::string& where);
};

// diffusers.pipelines.flux.pipeline_flux.calculate_shift (python floats = double).
double CalculateShift(int64_t image_seq_len, int64_t base_seq_len, int64_t max_seq_len, double base_shift,
                      double max_shift);

class FlowMatchEulerScheduler final : public Scheduler {
 public:
  static constexpr const char* kClassName = "FlowMatchEulerDiscreteScheduler";
  explicit FlowMatchEulerScheduler(FlowMatchEulerConfig config);
  const char* name() const override { return kClassName; }

  const FlowMatchEulerConfig& config() const { return config_; }

  // set_timesteps(num_inference_steps, sigmas=custom_sigmas, mu=mu). With custom_sigmas the pipeline's
  // list (FLUX: np.linspace(1, 1/n, n)) is converted to float32 as diffusers does; without, sigmas come
  // from the training schedule. mu is required with use_dynamic_shifting.
  Status SetTimesteps(int64_t num_inference_steps, std::optional<double> mu,
                      const std::optional<std::vector<double>>& custom_sigmas);
  Status SetTimesteps(const ScheduleRequest& r) override { return SetTimesteps(r.steps, r.mu, r.sigmas); }

  // FLUX's default custom sigmas: np.linspace(1.0, 1 / n, n) (float64).
  static std::vector<double> FluxSigmas(int64_t num_inference_steps);
  // np.linspace(1.0, 0.0, n + 1)[:-1] (float64): HunyuanVideoPipeline's default custom sigmas.
  static std::vector<double> LinearSigmas(int64_t num_inference_steps);
  // MochiPipeline's linear_quadratic_schedule(n, threshold_noise) (python floats = double): linear from 1 down
  // to 1 - threshold over the first n / 2 steps, then quadratic towards 0. Needs n >= 2 (diffusers divides by
  // n / 2).
  static StatusOr<std::vector<double>> LinearQuadraticSigmas(int64_t num_inference_steps, double threshold_noise);

  // diffusers' scheduler.timesteps [n] and scheduler.sigmas [n + 1] (trailing 0, or 1 with
  // invert_sigmas), both float32.
  const std::vector<float>& timesteps() const override { return timesteps_; }
  const std::vector<float>& sigmas() const { return sigmas_; }

  // One Euler step from step index `step_index` (0-based, the begin_index=0 path of the pipeline):
  // prev = sample.float() + dt * model_output with dt = sigma[i+1] - sigma[i] a 0-dim float32 tensor on
  // model_output's device (as diffusers), cast back to model_output's dtype.
  at::Tensor Step(const at::Tensor& model_output, int64_t step_index, const at::Tensor& sample) override;

 private:
  FlowMatchEulerConfig config_;
  float sigma_min_ = 0.f, sigma_max_ = 1.f;  // from the training schedule, as diffusers' __init__
  std::vector<float> timesteps_, sigmas_;
};

}  // namespace ditserve::runtime
