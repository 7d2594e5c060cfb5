#include "support/fake_engine.h"

#include <fstream>
#include <iterator>

#include "engine/io/mp4.h"
#include "engine/io/png.h"
#include "support/synthetic_video.h"

namespace ditserve::testing {

void WriteFakeVideoModel(const std::string& dir, const std::string& name) {
  std::ofstream(dir + "/model.json") << R"({"format_version": 1, "family": "fake", "name": ")" << name << R"(",
  "output": "video",
  "limits": {"width": {"min": 32, "max": 4096, "multiple_of": 16, "default": 64},
             "height": {"min": 32, "max": 4096, "multiple_of": 16, "default": 64},
             "num_frames": {"min": 1, "max": 129, "default": 9},
             "num_inference_steps": {"min": 1, "max": 50, "default": 2},
             "default_fps": 24}}
)";
}

StatusOr<GenerateOutput> FakeOutput(const GenerateParams& p, const EngineOptions& o) {
  GenerateOutput out;
  out.width = p.width;
  out.height = p.height;
  out.frames = p.num_frames;
  out.seed = p.seed;
  if (p.format == GenerateParams::Format::kPng) {
    const std::vector<uint8_t> rgb = NoiseImage(p.width, p.height, p.seed);
    out.data = io::EncodePng(rgb.data(), static_cast<int>(p.width), static_cast<int>(p.height), 3,
                             {{"seed", std::to_string(p.seed)}});
    if (out.data.empty()) return Internal("fake engine: PNG encoding failed");
    out.mime_type = "image/png";
    out.frames = 1;
    return out;
  }
  const std::vector<uint8_t> rgb = MovingFrames(p.num_frames, p.width, p.height);
  io::Mp4Options mp4;
  mp4.fps = static_cast<int>(p.fps);
  mp4.crf = o.video_crf;
  mp4.metadata = {{"seed", std::to_string(p.seed)}, {"crf", std::to_string(o.video_crf)}};
  ASSIGN_OR_RETURN(out.data, io::EncodeMp4(rgb.data(), rgb.size(), p.num_frames, p.width, p.height, mp4));
  out.mime_type = "video/mp4";
  return out;
}

StatusOr<std::unique_ptr<Engine>> FakeEngine::Create(const EngineOptions& options) {
  ASSIGN_OR_RETURN(ModelInfo info, ReadModelInfo(options.model_dir));
  std::ifstream load_error(options.model_dir + "/fake_load_error");
  if (load_error) {
    std::string reason((std::istreambuf_iterator<char>(load_error)), std::istreambuf_iterator<char>());
    return FailedPrecondition(reason);
  }
  return std::unique_ptr<Engine>(std::make_unique<FakeEngine>(options, std::move(info)));
}

StatusOr<GenerateOutput> FakeEngine::Generate(const GenerateParams& params, JobControl& control) {
  control.Progress(Stage::kTextEncode, 0, 0);
  for (int64_t step = 0; step <= params.steps; ++step) {
    if (control.Cancelled()) return Cancelled("fake engine: cancelled at step " + std::to_string(step));
    control.Progress(Stage::kDenoise, step, params.steps);
  }
  control.Progress(Stage::kDecode, 0, 0);
  control.Progress(Stage::kEncode, 0, 0);
  return FakeOutput(params, options_);
}

}  // namespace ditserve::testing
