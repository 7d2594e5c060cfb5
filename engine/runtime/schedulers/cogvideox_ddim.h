// CogVideoXDDIMScheduler and CogVideoXDPMScheduler as diffusers 0.34 computes them: the DDIM-family
// training schedule with CogVideoX's SNR shift (alphas_cumprod / (s + (1 - s) * alphas_cumprod)), optional
// zero-terminal-SNR rescale, "leading" / "trailing" / "linspace" timestep spacing, and v-prediction (or
// epsilon / sample). Arithmetic mirrors diffusers op for op on tensors: the schedule stays in its diffusers
// dtype (float64 for "scaled_linear", float32 otherwise, final_alpha_cumprod float32) and each step's
// coefficients are 0-dim CPU tensors, so results match bit for bit on the CPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>

#include "ditserve/status.h"
#include "engine/runtime/schedulers/scheduler.h"

namespace ditserve::runtime {

struct CogVideoXSchedulerConfig {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.00085, beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";  // or "linear"
  bool set_alpha_to_one = true;
  int64_t steps_offset = 0;
  std::string prediction_type = "epsilon";  // "v_prediction" (CogVideoX's checkpoints), "sample"
  std::string timestep_spacing = "leading";  // "trailing" (CogVideoX's checkpoints), "linspace"
  bool rescale_betas_zero_snr = false;
  double snr_shift_scale = 3.0;

  // scheduler_config.json contents; unsupported options (trained_betas, thresholding, other beta
  // schedules) are refused naming the key. `where` prefixes errors.
  static StatusOr<CogVideoXSchedulerConfig> FromJson(const nlohmann::json& j, const std::string& where);
};

// What both classes share: the training schedule and set_timesteps.
class CogVideoXSchedulerBase : public Scheduler {
 public:
  explicit CogVideoXSchedulerBase(CogVideoXSchedulerConfig config);
  Status SetTimesteps(const ScheduleRequest& request) override;
  const std::vector<float>& timesteps() const override { return timesteps_; }
  // alphas_cumprod after the SNR shift and rescale, in diffusers' dtype.
  const at::Tensor& alphas_cumprod() const { return alphas_cumprod_; }

 protected:
  struct Alphas {
    at::Tensor t, prev;  // 0-dim: alpha_prod_t, alpha_prod_t_prev
    int64_t prev_timestep;
  };
  Alphas At(int64_t step_index) const;
  // pred_original_sample by prediction_type.
  at::Tensor PredOriginal(const at::Tensor& model_output, const at::Tensor& sample, const at::Tensor& alpha_t) const;

  CogVideoXSchedulerConfig config_;
  at::Tensor alphas_cumprod_, final_alpha_cumprod_;
  std::vector<int64_t> steps_;  // integer timesteps
  std::vector<float> timesteps_;
  uint64_t seed_ = 0;
};

class CogVideoXDDIMScheduler final : public CogVideoXSchedulerBase {
 public:
  static constexpr const char* kClassName = "CogVideoXDDIMScheduler";
  using CogVideoXSchedulerBase::CogVideoXSchedulerBase;
  const char* name() const override { return kClassName; }
  // step(model_output, t, sample) with eta 0: a_t * sample + b_t * pred_original_sample.
  at::Tensor Step(const at::Tensor& model_output, int64_t step_index, const at::Tensor& sample) override;
};

// The stochastic second-order DPM solver. Its noise comes from the request's generator after the initial
// latents, as the pipeline shares one torch.Generator between prepare_latents and scheduler.step: the first
// Step seeds a CPU generator with ScheduleRequest::seed and draws (and drops) one tensor of the sample's
// shape and dtype, then every step draws its noise (one tensor, two once the previous prediction exists).
class CogVideoXDPMScheduler final : public CogVideoXSchedulerBase {
 public:
  static constexpr const char* kClassName = "CogVideoXDPMScheduler";
  using CogVideoXSchedulerBase::CogVideoXSchedulerBase;
  const char* name() const override { return kClassName; }
  Status SetTimesteps(const ScheduleRequest& request) override;
  at::Tensor Step(const at::Tensor& model_output, int64_t step_index, const at::Tensor& sample) override;

 private:
  at::Tensor Noise(const at::Tensor& sample);
  at::Generator generator_;
  at::Tensor old_pred_original_;
};

}  // namespace ditserve::runtime
