#include "server/validate.h"

#include "ditserve/request.h"
#include "server/echo.h"
#include "server/request_params.h"

namespace ditserve::server {

StatusOr<v1::GenerateRequest> ValidateAndResolve(const v1::GenerateRequest& req,
                                                 const std::map<std::string, ModelInfo>& models,
                                                 uint64_t random_seed) {
  v1::GenerateRequest out = req;
  if (out.model().empty()) {
    if (models.size() != 1) return InvalidArgument("model: required (see ListModels)");
    out.set_model(models.begin()->first);
  }
  auto it = models.find(out.model());
  if (it == models.end()) {
    std::string names;
    for (const auto& [n, _] : models) names += (names.empty() ? "" : ", ") + n;
    return InvalidArgument("model: unknown model '" + Echo(out.model()) + "'; available: " + names);
  }
  const ModelInfo& m = it->second;
  if (out.client_request_id().size() > kMaxClientRequestIdChars) {
    return InvalidArgument("client_request_id: allowed at most " + std::to_string(kMaxClientRequestIdChars) +
                           " bytes");
  }

  // Defaults, then the engine's own validator on exactly what the ranks will run.
  const bool video = m.output == OutputKind::kVideo;
  if (out.width() == 0) out.set_width(static_cast<uint32_t>(m.width.default_value));
  if (out.height() == 0) out.set_height(static_cast<uint32_t>(m.height.default_value));
  if (out.num_frames() == 0) out.set_num_frames(static_cast<uint32_t>(m.num_frames.default_value));
  if (out.num_inference_steps() == 0) out.set_num_inference_steps(static_cast<uint32_t>(m.steps.default_value));
  if (!out.has_guidance_scale()) out.set_guidance_scale(m.default_guidance_scale);
  if (!out.has_true_cfg_scale()) out.set_true_cfg_scale(1.f);
  const auto fmt = out.output_format();
  if (fmt == v1::OUTPUT_FORMAT_UNSPECIFIED) {
    out.set_output_format(video ? v1::OUTPUT_FORMAT_MP4 : v1::OUTPUT_FORMAT_PNG);
  } else if (fmt != v1::OUTPUT_FORMAT_PNG && fmt != v1::OUTPUT_FORMAT_MP4) {
    return InvalidArgument("output_format: unknown value " + std::to_string(fmt) + "; allowed OUTPUT_FORMAT_PNG, " +
                           "OUTPUT_FORMAT_MP4");
  }
  if (video && out.fps() == 0) out.set_fps(m.default_fps ? m.default_fps : kFpsRange.default_value);
  RETURN_IF_ERROR(ValidateParams(m, ToParams(out)));
  if (!out.has_seed()) out.set_seed(random_seed);
  return out;
}

}  // namespace ditserve::server
