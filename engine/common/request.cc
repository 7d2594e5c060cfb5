#include "ditserve/request.h"

#include <cmath>
#include <cstdio>

namespace ditserve {
namespace {

Status CheckRange(const char* field, int64_t v, const IntRange& r) {
  if (r.Contains(v)) return Status::Ok();
  return InvalidArgument(std::string(field) + ": " + std::to_string(v) + " is not allowed; allowed " + r.Describe());
}

Status CheckFloat(const char* field, float v, float lo, float hi) {
  if (std::isfinite(v) && v >= lo && v <= hi) return Status::Ok();
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%s: %g is not allowed; allowed [%g, %g]", field, v, lo, hi);
  return InvalidArgument(buf);
}

Status CheckText(const char* field, const std::string& text, size_t max_chars) {
  const size_t n = CountChars(text);
  if (n <= max_chars) return Status::Ok();
  return InvalidArgument(std::string(field) + ": " + std::to_string(n) + " characters; allowed at most " +
                         std::to_string(max_chars));
}

bool IsBlank(const std::string& s) {
  for (unsigned char c : s) {
    if (!std::isspace(c)) return false;
  }
  return true;
}

}  // namespace

bool UsesCfg(const ModelInfo& model, const GenerateParams& p) {
  switch (model.cfg) {
    case CfgRule::kTrueCfg: return p.true_cfg_scale > 1.f && !p.negative_prompt.empty();
    case CfgRule::kGuidanceScale: return p.guidance_scale > 1.f;
  }
  return false;
}

const char* CfgRuleText(CfgRule rule) {
  switch (rule) {
    case CfgRule::kTrueCfg: return "true_cfg_scale > 1 and a non-empty negative_prompt";
    case CfgRule::kGuidanceScale: return "guidance_scale > 1";
  }
  return "";
}

size_t CountChars(const std::string& utf8) {
  size_t n = 0;
  for (unsigned char c : utf8) n += (c & 0xC0) != 0x80;
  return n;
}

Status ValidateParams(const ModelInfo& m, const GenerateParams& p) {
  if (IsBlank(p.prompt)) return InvalidArgument("prompt: must not be empty");
  RETURN_IF_ERROR(CheckText("prompt", p.prompt, m.max_prompt_chars));
  RETURN_IF_ERROR(CheckText("negative_prompt", p.negative_prompt, m.max_prompt_chars));
  RETURN_IF_ERROR(CheckRange("width", p.width, m.width));
  RETURN_IF_ERROR(CheckRange("height", p.height, m.height));
  RETURN_IF_ERROR(CheckRange("num_frames", p.num_frames, m.num_frames));
  RETURN_IF_ERROR(CheckRange("num_inference_steps", p.steps, m.steps));
  RETURN_IF_ERROR(CheckFloat("guidance_scale", p.guidance_scale, 0.f, 100.f));
  RETURN_IF_ERROR(CheckFloat("true_cfg_scale", p.true_cfg_scale, 1.f, 100.f));
  RETURN_IF_ERROR(CheckFloat("cache_threshold", p.cache_threshold, 0.f, 1.f));
  const bool video = m.output == OutputKind::kVideo;
  if (!video && p.format != GenerateParams::Format::kPng) {
    return InvalidArgument("output_format: OUTPUT_FORMAT_MP4 is not available for image model '" + m.name +
                           "'; allowed OUTPUT_FORMAT_PNG");
  }
  if (video && p.format == GenerateParams::Format::kPng && p.num_frames > 1) {
    return InvalidArgument("output_format: OUTPUT_FORMAT_PNG needs num_frames = 1; allowed OUTPUT_FORMAT_MP4");
  }
  if (!video && p.fps != 0) return InvalidArgument("fps: only video models take fps; allowed 0 for '" + m.name + "'");
  if (video) RETURN_IF_ERROR(CheckRange("fps", p.fps, kFpsRange));
  if (p.use_dynamic_cfg && m.family != "cogvideox") {
    return InvalidArgument("use_dynamic_cfg: only CogVideoX models take it; allowed false for '" + m.name + "'");
  }
  return Status::Ok();
}

}  // namespace ditserve
