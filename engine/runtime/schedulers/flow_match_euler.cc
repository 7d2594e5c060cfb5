#include "engine/runtime/schedulers/flow_match_euler.h"

#include <cmath>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace ditserve::runtime {
namespace {

using nlohmann::json;

// numpy.linspace(start, stop, num) in float64, same operation order as numpy 2.x.
std::vector<double> Linspace(double start, double stop, int64_t num) {
  std::vector<double> y(static_cast<size_t>(num));
  if (num <= 0) return y;
  const int64_t div = num - 1;
  const double delta = stop - start;
  if (div > 0) {
    const double step = delta / static_cast<double>(div);
    for (int64_t i = 0; i < num; ++i) {
      y[i] = step == 0 ? (static_cast<double>(i) / div) * delta + start : static_cast<double>(i) * step + start;
    }
    y[num - 1] = stop;
  } else {
    y[0] = start;  // num == 1: numpy computes arange(1) * delta + start
  }
  return y;
}

// Elementwise shift of one sigma; T = float mirrors numpy float32 arrays with weak python scalars,
// T = double mirrors float64 arrays.
template <typename T>
T ShiftSigma(const FlowMatchEulerConfig& c, std::optional<double> mu, T s) {
  if (c.use_dynamic_shifting) {
    const T base = static_cast<T>(c.time_shift_type == "linear" ? *mu : std::exp(*mu));
    const T r = static_cast<T>(1) / s - static_cast<T>(1);  // (1 / t - 1) ** 1.0 == itself
    return base / (base + r);
  }
  const T shift = static_cast<T>(c.shift);
  const T shift_m1 = static_cast<T>(c.shift - 1.0);
  return shift * s / (static_cast<T>(1) + shift_m1 * s);
}

template <typename T>
void StretchToTerminal(double shift_terminal, std::vector<T>& t) {
  if (t.empty()) return;
  const T scale = (static_cast<T>(1) - t.back()) / static_cast<T>(1.0 - shift_terminal);
  for (T& v : t) v = static_cast<T>(1) - ((static_cast<T>(1) - v) / scale);
}

Status Unsupported(const std::string& where, const std::string& key) {
  return InvalidArgument(where + ": scheduler option '" + key + "' is not supported by ditserve");
}

}  // namespace

double CalculateShift(int64_t image_seq_len, int64_t base_seq_len, int64_t max_seq_len, double base_shift,
                      double max_shift) {
  const double m = (max_shift - base_shift) / static_cast<double>(max_seq_len - base_seq_len);
  const double b = base_shift - m * static_cast<double>(base_seq_len);
  return static_cast<double>(image_seq_len) * m + b;
}

StatusOr<FlowMatchEulerConfig> FlowMatchEulerConfig::FromJson(const json& j, const std::string& where) {
  if (!j.is_object()) return InvalidArgument(where + " must be an object");
  FlowMatchEulerConfig c;
  try {
    auto get = [&](const char* key, auto& out) {
      auto it = j.find(key);
      if (it != j.end() && !it->is_null()) out = it->get<std::decay_t<decltype(out)>>();
    };
    if (auto it = j.find("_class_name"); it != j.end() && it->is_string() &&
                                         it->get<std::string>() != FlowMatchEulerScheduler::kClassName) {
      return InvalidArgument(where + "._class_name is " + it->get<std::string>() +
                             "; expected FlowMatchEulerDiscreteScheduler");
    }
    get("num_train_timesteps", c.num_train_timesteps);
    get("shift", c.shift);
    get("use_dynamic_shifting", c.use_dynamic_shifting);
    get("base_shift", c.base_shift);
    get("max_shift", c.max_shift);
    get("base_image_seq_len", c.base_image_seq_len);
    get("max_image_seq_len", c.max_image_seq_len);
    get("invert_sigmas", c.invert_sigmas);
    get("time_shift_type", c.time_shift_type);
    if (auto it = j.find("shift_terminal"); it != j.end() && !it->is_null()) {
      const double v = it->get<double>();
      if (v != 0.0) c.shift_terminal = v;  // diffusers tests truthiness
    }
    for (const char* flag : {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "stochastic_sampling"}) {
      bool on = false;
      get(flag, on);
      if (on) return Unsupported(where, flag);
    }
  } catch (const json::exception& e) {
    return InvalidArgument(where + ": " + e.what());
  }
  if (c.time_shift_type != "exponential" && c.time_shift_type != "linear") {
    return InvalidArgument(where + ".time_shift_type must be \"exponential\" or \"linear\"");
  }
  if (c.num_train_timesteps < 1) return InvalidArgument(where + ".num_train_timesteps must be >= 1");
  if (c.max_image_seq_len == c.base_image_seq_len) {
    return InvalidArgument(where + ": max_image_seq_len must differ from base_image_seq_len");
  }
  return c;
}

FlowMatchEulerScheduler::FlowMatchEulerScheduler(FlowMatchEulerConfig config) : config_(std::move(config)) {
  // __init__: timesteps = linspace(1, N, N)[::-1] (exact integers), sigmas = timesteps / N in float32,
  // static shift in float32. Only the extremes are kept (sigma_max / sigma_min).
  const auto n = static_cast<float>(config_.num_train_timesteps);
  auto init_sigma = [&](float t) {
    float s = t / n;
    if (!config_.use_dynamic_shifting) {
      const float shift = static_cast<float>(config_.shift);
      s = shift * s / (1.0f + static_cast<float>(config_.shift - 1.0) * s);
    }
    return s;
  };
  sigma_max_ = init_sigma(n);
  sigma_min_ = init_sigma(1.0f);
}

std::vector<double> FlowMatchEulerScheduler::FluxSigmas(int64_t num_inference_steps) {
  return Linspace(1.0, 1.0 / static_cast<double>(num_inference_steps), num_inference_steps);
}

std::vector<double> FlowMatchEulerScheduler::LinearSigmas(int64_t num_inference_steps) {
  std::vector<double> s = Linspace(1.0, 0.0, num_inference_steps + 1);
  s.pop_back();
  return s;
}

StatusOr<std::vector<double>> FlowMatchEulerScheduler::LinearQuadraticSigmas(int64_t num_steps, double threshold) {
  if (num_steps < 2) return InvalidArgument("num_inference_steps: the linear-quadratic schedule needs >= 2 steps");
  const int64_t linear_steps = num_steps / 2;
  const int64_t quadratic_steps = num_steps - linear_steps;
  const double step_diff = static_cast<double>(linear_steps) - threshold * static_cast<double>(num_steps);
  const double qs2 = static_cast<double>(quadratic_steps * quadratic_steps);
  const double quadratic_coef = step_diff / static_cast<double>(linear_steps * quadratic_steps * quadratic_steps);
  const double linear_coef = threshold / static_cast<double>(linear_steps) - 2 * step_diff / qs2;
  const double constant = quadratic_coef * static_cast<double>(linear_steps * linear_steps);
  std::vector<double> s;
  s.reserve(static_cast<size_t>(num_steps));
  for (int64_t i = 0; i < linear_steps; ++i) {
    s.push_back(1.0 - static_cast<double>(i) * threshold / static_cast<double>(linear_steps));
  }
  for (int64_t i = linear_steps; i < num_steps; ++i) {
    const double x = quadratic_coef * static_cast<double>(i * i) + linear_coef * static_cast<double>(i) + constant;
    s.push_back(1.0 - x);
  }
  return s;
}

Status FlowMatchEulerScheduler::SetTimesteps(int64_t num_inference_steps, std::optional<double> mu,
                                             const std::optional<std::vector<double>>& custom_sigmas) {
  if (num_inference_steps < 1) return InvalidArgument("num_inference_steps must be >= 1");
  if (config_.use_dynamic_shifting && !mu.has_value()) {
    return InvalidArgument("mu must be passed when use_dynamic_shifting is set");
  }
  if (custom_sigmas && static_cast<int64_t>(custom_sigmas->size()) != num_inference_steps) {
    return InvalidArgument("custom sigmas must have num_inference_steps entries");
  }
  std::vector<float> sigmas(static_cast<size_t>(num_inference_steps));
  if (custom_sigmas) {
    // np.array(sigmas).astype(np.float32), then float32 arithmetic.
    std::vector<float> s32(custom_sigmas->begin(), custom_sigmas->end());
    for (float& s : s32) s = ShiftSigma<float>(config_, mu, s);
    if (config_.shift_terminal) StretchToTerminal<float>(*config_.shift_terminal, s32);
    sigmas = std::move(s32);
  } else {
    // timesteps = np.linspace(sigma_max * N, sigma_min * N, n); sigmas = timesteps / N, all float64.
    const double n_train = static_cast<double>(config_.num_train_timesteps);
    std::vector<double> s64 = Linspace(static_cast<double>(sigma_max_) * n_train,
                                       static_cast<double>(sigma_min_) * n_train, num_inference_steps);
    for (double& s : s64) s = ShiftSigma<double>(config_, mu, s / n_train);
    if (config_.shift_terminal) StretchToTerminal<double>(*config_.shift_terminal, s64);
    for (size_t i = 0; i < s64.size(); ++i) sigmas[i] = static_cast<float>(s64[i]);
  }

  // torch: timesteps = sigmas * N (float32); sigmas = cat([sigmas, zeros(1)]).
  const auto n_train = static_cast<float>(config_.num_train_timesteps);
  if (config_.invert_sigmas) {
    for (float& v : sigmas) v = 1.0f - v;
  }
  timesteps_.resize(sigmas.size());
  for (size_t i = 0; i < sigmas.size(); ++i) timesteps_[i] = sigmas[i] * n_train;
  sigmas_ = std::move(sigmas);
  sigmas_.push_back(config_.invert_sigmas ? 1.0f : 0.0f);
  return Status::Ok();
}

at::Tensor FlowMatchEulerScheduler::Step(const at::Tensor& model_output, int64_t step_index,
                                         const at::Tensor& sample) {
  TORCH_CHECK(step_index >= 0 && step_index + 1 < static_cast<int64_t>(sigmas_.size()),
              "FlowMatchEulerScheduler: step index ", step_index, " out of range (SetTimesteps first)");
  // diffusers: dt = sigmas[i + 1] - sigmas[i] on 0-dim float32 tensors on the model's device; the same
  // float32 subtraction here, then the same tensor ops so dtype promotion matches.
  const float dt_value = sigmas_[step_index + 1] - sigmas_[step_index];
  const at::Tensor dt = at::scalar_tensor(dt_value, at::TensorOptions().dtype(at::kFloat).device(model_output.device()));
  at::Tensor prev = sample.to(at::kFloat) + dt * model_output;
  return prev.to(model_output.scalar_type());
}

}  // namespace ditserve::runtime
