#include "engine/runtime/schedulers/cogvideox_ddim.h"

#include <cmath>
#include <optional>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

namespace ditserve::runtime {
namespace {

using nlohmann::json;

// diffusers' rescale_zero_terminal_snr on alphas_cumprod (Algorithm 1 of arXiv 2305.08891).
at::Tensor RescaleZeroTerminalSnr(const at::Tensor& alphas_cumprod) {
  at::Tensor s = alphas_cumprod.sqrt();
  const at::Tensor s0 = s[0].clone(), sT = s[-1].clone();
  s -= sT;
  s *= s0 / (s0 - sT);
  return s.pow(2);
}

}  // namespace

StatusOr<CogVideoXSchedulerConfig> CogVideoXSchedulerConfig::FromJson(const json& j, const std::string& where) {
  if (!j.is_object()) return InvalidArgument(where + " must be an object");
  CogVideoXSchedulerConfig c;
  try {
    auto get = [&](const char* key, auto& out) {
      auto it = j.find(key);
      if (it != j.end() && !it->is_null()) out = it->get<std::decay_t<decltype(out)>>();
    };
    get("num_train_timesteps", c.num_train_timesteps);
    get("beta_start", c.beta_start);
    get("beta_end", c.beta_end);
    get("beta_schedule", c.beta_schedule);
    get("set_alpha_to_one", c.set_alpha_to_one);
    get("steps_offset", c.steps_offset);
    get("prediction_type", c.prediction_type);
    get("timestep_spacing", c.timestep_spacing);
    get("rescale_betas_zero_snr", c.rescale_betas_zero_snr);
    get("snr_shift_scale", c.snr_shift_scale);
    if (auto it = j.find("trained_betas"); it != j.end() && !it->is_null()) {
      return InvalidArgument(where + ": scheduler option 'trained_betas' is not supported by ditserve");
    }
    if (auto it = j.find("thresholding"); it != j.end() && it->is_boolean() && it->get<bool>()) {
      return InvalidArgument(where + ": scheduler option 'thresholding' is not supported by ditserve");
    }
  } catch (const json::exception& e) {
    return InvalidArgument(where + ": " + e.what());
  }
  if (c.beta_schedule != "scaled_linear" && c.beta_schedule != "linear") {
    return InvalidArgument(where + ".beta_schedule " + c.beta_schedule + " is not supported (scaled_linear, linear)");
  }
  if (c.prediction_type != "v_prediction" && c.prediction_type != "epsilon" && c.prediction_type != "sample") {
    return InvalidArgument(where + ".prediction_type " + c.prediction_type +
                           " is not supported (v_prediction, epsilon, sample)");
  }
  if (c.timestep_spacing != "trailing" && c.timestep_spacing != "leading" && c.timestep_spacing != "linspace") {
    return InvalidArgument(where + ".timestep_spacing " + c.timestep_spacing +
                           " is not supported (trailing, leading, linspace)");
  }
  if (c.num_train_timesteps < 1) return InvalidArgument(where + ".num_train_timesteps must be >= 1");
  return c;
}

CogVideoXSchedulerBase::CogVideoXSchedulerBase(CogVideoXSchedulerConfig config) : config_(std::move(config)) {
  const int64_t n = config_.num_train_timesteps;
  at::Tensor betas =
      config_.beta_schedule == "linear"
          ? at::linspace(config_.beta_start, config_.beta_end, n, at::kFloat)
          : at::linspace(std::pow(config_.beta_start, 0.5), std::pow(config_.beta_end, 0.5), n, at::kDouble).pow(2);
  const at::Tensor alphas = 1.0 - betas;
  at::Tensor ac = at::cumprod(alphas, 0);
  const double s = config_.snr_shift_scale;
  ac = ac / ((1 - s) * ac + s);
  if (config_.rescale_betas_zero_snr) ac = RescaleZeroTerminalSnr(ac);
  alphas_cumprod_ = ac;
  final_alpha_cumprod_ = config_.set_alpha_to_one ? at::scalar_tensor(1.0, at::kFloat) : ac[0];
}

Status CogVideoXSchedulerBase::SetTimesteps(const ScheduleRequest& request) {
  const int64_t n = request.steps, train = config_.num_train_timesteps;
  if (n < 1 || n > train) {
    return InvalidArgument("num_inference_steps must be in [1, " + std::to_string(train) + "], got " +
                           std::to_string(n));
  }
  seed_ = request.seed;
  steps_.clear();
  if (config_.timestep_spacing == "linspace") {
    // np.linspace(0, train - 1, n).round()[::-1]
    for (int64_t i = n - 1; i >= 0; --i) {
      const double v = n == 1 ? 0.0 : (i == n - 1 ? double(train - 1) : i * (double(train - 1) / double(n - 1)));
      steps_.push_back(static_cast<int64_t>(std::nearbyint(v)));
    }
  } else if (config_.timestep_spacing == "leading") {
    const int64_t ratio = train / n;
    for (int64_t i = n - 1; i >= 0; --i) steps_.push_back(i * ratio + config_.steps_offset);
  } else {  // trailing: np.round(np.arange(train, 0, -train / n)) - 1
    const double ratio = double(train) / double(n);
    const int64_t len = static_cast<int64_t>(std::ceil((0.0 - double(train)) / -ratio));
    const double delta = (double(train) - ratio) - double(train);
    for (int64_t i = 0; i < len; ++i) steps_.push_back(static_cast<int64_t>(std::nearbyint(train + i * delta)) - 1);
  }
  timesteps_.assign(steps_.begin(), steps_.end());
  return Status::Ok();
}

CogVideoXSchedulerBase::Alphas CogVideoXSchedulerBase::At(int64_t step_index) const {
  const int64_t t = steps_.at(step_index);
  const int64_t prev = t - config_.num_train_timesteps / static_cast<int64_t>(steps_.size());
  return {alphas_cumprod_[t], prev >= 0 ? alphas_cumprod_[prev] : final_alpha_cumprod_, prev};
}

at::Tensor CogVideoXSchedulerBase::PredOriginal(const at::Tensor& model_output, const at::Tensor& sample,
                                                const at::Tensor& alpha_t) const {
  const at::Tensor beta_t = 1 - alpha_t;
  if (config_.prediction_type == "epsilon") return (sample - beta_t.pow(0.5) * model_output) / alpha_t.pow(0.5);
  if (config_.prediction_type == "sample") return model_output;
  return alpha_t.pow(0.5) * sample - beta_t.pow(0.5) * model_output;
}

at::Tensor CogVideoXDDIMScheduler::Step(const at::Tensor& model_output, int64_t step_index,
                                        const at::Tensor& sample) {
  const Alphas a = At(step_index);
  const at::Tensor pred = PredOriginal(model_output, sample, a.t);
  const at::Tensor a_t = ((1 - a.prev) / (1 - a.t)).pow(0.5);
  const at::Tensor b_t = a.prev.pow(0.5) - a.t.pow(0.5) * a_t;
  return (a_t * sample + b_t * pred).to(model_output.scalar_type());
}

Status CogVideoXDPMScheduler::SetTimesteps(const ScheduleRequest& request) {
  RETURN_IF_ERROR(CogVideoXSchedulerBase::SetTimesteps(request));
  generator_ = at::Generator();
  old_pred_original_ = at::Tensor();
  return Status::Ok();
}

at::Tensor CogVideoXDPMScheduler::Noise(const at::Tensor& sample) {
  // randn_tensor(sample.shape, generator, device, dtype) with a CPU generator: drawn on the CPU, then moved.
  const auto opts = at::TensorOptions().dtype(sample.scalar_type()).device(at::kCPU);
  if (!generator_.defined()) {
    generator_ = at::make_generator<at::CPUGeneratorImpl>(seed_);
    (void)at::randn(sample.sizes(), generator_, opts);  // the pipeline's initial latents
  }
  return at::randn(sample.sizes(), generator_, opts).to(sample.device());
}

at::Tensor CogVideoXDPMScheduler::Step(const at::Tensor& model_output, int64_t step_index, const at::Tensor& sample) {
  const Alphas a = At(step_index);
  const std::optional<at::Tensor> back =
      step_index > 0 ? std::optional<at::Tensor>(alphas_cumprod_[steps_[step_index - 1]]) : std::nullopt;
  const at::Tensor pred = PredOriginal(model_output, sample, a.t);

  // get_variables / get_mult, with diffusers' expressions.
  auto lambda = [](const at::Tensor& alpha) { return (alpha / (1 - alpha)).pow(0.5).log(); };
  const at::Tensor lamb = lambda(a.t), h = lambda(a.prev) - lamb;
  const at::Tensor mult1 = ((1 - a.prev) / (1 - a.t)).pow(0.5) * (-h).exp();
  const at::Tensor mult2 = (-2 * h).expm1() * a.prev.pow(0.5);
  const at::Tensor mult_noise = (1 - a.prev).pow(0.5) * (1 - (-2 * h).exp()).pow(0.5);

  at::Tensor prev = mult1 * sample - mult2 * pred + mult_noise * Noise(sample);
  if (old_pred_original_.defined() && a.prev_timestep >= 0) {
    const at::Tensor r = (lamb - lambda(*back)) / h;
    const at::Tensor mult3 = 1 + 1 / (2 * r), mult4 = 1 / (2 * r);
    const at::Tensor denoised_d = mult3 * pred - mult4 * old_pred_original_;
    prev = mult1 * sample - mult2 * denoised_d + mult_noise * Noise(sample);
  }
  old_pred_original_ = pred;
  return prev.to(model_output.scalar_type());
}

}  // namespace ditserve::runtime
