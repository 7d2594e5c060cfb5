#include "engine/runtime/output_encoder.h"

#include <cstdio>
#include <utility>

#include "engine/io/mp4.h"
#include "engine/io/png.h"

namespace ditserve::runtime {
namespace {

std::string FormatFloat(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::vector<std::pair<std::string, std::string>> Metadata(const GenerateParams& p, const std::string& model,
                                                          int64_t width, int64_t height, int64_t frames,
                                                          bool with_prompt) {
  std::vector<std::pair<std::string, std::string>> m = {{"model", model}};
  if (with_prompt) {
    m.push_back({"prompt", p.prompt});
    m.push_back({"negative_prompt", p.negative_prompt});
  }
  m.insert(m.end(), {
      {"seed", std::to_string(p.seed)},
      {"steps", std::to_string(p.steps)},
      {"guidance_scale", FormatFloat(p.guidance_scale)},
      {"true_cfg_scale", FormatFloat(p.true_cfg_scale)},
      {"width", std::to_string(width)},
      {"height", std::to_string(height)},
  });
  if (frames > 1) m.push_back({"frames", std::to_string(frames)});
  if (p.use_dynamic_cfg) m.push_back({"use_dynamic_cfg", "true"});
  m.push_back({"software", "ditserve"});
  return m;
}

}  // namespace

StatusOr<EncodedOutput> EncodeOutput(const std::vector<uint8_t>& rgb, int64_t frames, int64_t width, int64_t height,
                                     const GenerateParams& params, const std::string& model,
                                     const OutputOptions& options) {
  if (static_cast<int64_t>(rgb.size()) != frames * width * height * 3) {
    return Internal("output has " + std::to_string(rgb.size()) + " bytes for " + std::to_string(frames) + " frames of " +
                    std::to_string(width) + "x" + std::to_string(height));
  }
  EncodedOutput out;
  const auto meta = Metadata(params, model, width, height, frames, options.prompt_in_metadata);
  if (params.format == GenerateParams::Format::kPng) {
    if (frames != 1) return InvalidArgument("output_format: PNG holds one frame; allowed OUTPUT_FORMAT_MP4");
    out.data = io::EncodePng(rgb.data(), static_cast<int>(width), static_cast<int>(height), 3, meta);
    if (out.data.empty()) return Internal("PNG encoding failed");
    out.mime_type = "image/png";
    return out;
  }
  io::Mp4Options mp4;
  mp4.fps = static_cast<int>(params.fps);
  mp4.crf = options.crf;
  mp4.metadata = meta;
  ASSIGN_OR_RETURN(out.data, io::EncodeMp4(rgb.data(), rgb.size(), frames, width, height, mp4));
  out.mime_type = "video/mp4";
  return out;
}

}  // namespace ditserve::runtime
