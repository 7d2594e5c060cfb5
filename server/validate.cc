#include "server/validate.h"

#include <cmath>
#include <sstream>

namespace ditserve::server {
namespace {

size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool IsBlank(const std::string& s) {
  for (unsigned char c : s) {
    if (!std::isspace(c)) return false;
  }
  return true;
}

Status CheckRange(const char* field, int64_t v, const IntRange& r) {
  if (r.Contains(v)) return Status::Ok();
  return InvalidArgument(std::string(field) + ": " + std::to_string(v) + " is not allowed; allowed " + r.Describe());
}

Status CheckFloat(const char* field, float v, float lo, float hi) {
  if (std::isfinite(v) && v >= lo && v <= hi) return Status::Ok();
  std::ostringstream os;
  os << field << ": " << v << " is not allowed; allowed [" << lo << ", " << hi << "]";
  return InvalidArgument(os.str());
}

}  // namespace

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
    return InvalidArgument("model: unknown model '" + out.model() + "'; available: " + names);
  }
  const ModelInfo& m = it->second;
  const size_t max_chars = m.max_prompt_chars;

  if (IsBlank(out.prompt())) return InvalidArgument("prompt: must not be empty");
  if (Utf8Length(out.prompt()) > max_chars) {
    return InvalidArgument("prompt: " + std::to_string(Utf8Length(out.prompt())) + " characters; allowed at most " +
                           std::to_string(max_chars));
  }
  if (Utf8Length(out.negative_prompt()) > max_chars) {
    return InvalidArgument("negative_prompt: " + std::to_string(Utf8Length(out.negative_prompt())) +
                           " characters; allowed at most " + std::to_string(max_chars));
  }
  if (out.client_request_id().size() > kMaxClientRequestIdChars) {
    return InvalidArgument("client_request_id: allowed at most " + std::to_string(kMaxClientRequestIdChars) +
                           " bytes");
  }

  if (out.width() == 0) out.set_width(static_cast<uint32_t>(m.width.default_value));
  if (out.height() == 0) out.set_height(static_cast<uint32_t>(m.height.default_value));
  if (out.num_frames() == 0) out.set_num_frames(static_cast<uint32_t>(m.num_frames.default_value));
  if (out.num_inference_steps() == 0) out.set_num_inference_steps(static_cast<uint32_t>(m.steps.default_value));
  RETURN_IF_ERROR(CheckRange("width", out.width(), m.width));
  RETURN_IF_ERROR(CheckRange("height", out.height(), m.height));
  RETURN_IF_ERROR(CheckRange("num_frames", out.num_frames(), m.num_frames));
  RETURN_IF_ERROR(CheckRange("num_inference_steps", out.num_inference_steps(), m.steps));

  if (!out.has_guidance_scale()) out.set_guidance_scale(m.default_guidance_scale);
  RETURN_IF_ERROR(CheckFloat("guidance_scale", out.guidance_scale(), 0.f, 100.f));
  if (!out.has_true_cfg_scale()) out.set_true_cfg_scale(1.f);
  RETURN_IF_ERROR(CheckFloat("true_cfg_scale", out.true_cfg_scale(), 1.f, 100.f));
  RETURN_IF_ERROR(CheckFloat("cache_threshold", out.cache_threshold(), 0.f, 1.f));

  const bool video = m.output == OutputKind::kVideo;
  const auto fmt = out.output_format();
  if (fmt == v1::OUTPUT_FORMAT_UNSPECIFIED) {
    out.set_output_format(video ? v1::OUTPUT_FORMAT_MP4 : v1::OUTPUT_FORMAT_PNG);
  } else if (fmt != v1::OUTPUT_FORMAT_PNG && fmt != v1::OUTPUT_FORMAT_MP4) {
    return InvalidArgument("output_format: unknown value " + std::to_string(fmt) + "; allowed PNG, MP4");
  } else if (!video && fmt != v1::OUTPUT_FORMAT_PNG) {
    return InvalidArgument("output_format: " + v1::OutputFormat_Name(fmt) + " is not available for image model '" +
                           m.name + "'; allowed OUTPUT_FORMAT_PNG");
  } else if (video && fmt == v1::OUTPUT_FORMAT_PNG && out.num_frames() > 1) {
    return InvalidArgument("output_format: OUTPUT_FORMAT_PNG needs num_frames = 1; allowed OUTPUT_FORMAT_MP4");
  }
  if (!video && out.fps() != 0) return InvalidArgument("fps: only video models take fps; allowed 0 for '" + m.name + "'");
  if (video) {
    if (out.fps() == 0) out.set_fps(m.default_fps ? m.default_fps : 24);
    RETURN_IF_ERROR(CheckRange("fps", out.fps(), IntRange{1, 120, 1, 24}));
  }
  if (!out.has_seed()) out.set_seed(random_seed);
  return out;
}

}  // namespace ditserve::server
