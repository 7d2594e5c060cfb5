// A stand-in Engine for server tests whose outputs the tiny FLUX models cannot make: videos, and results
// far above gRPC's 4 MiB message limit. No torch, no model: it reports progress like a pipeline and
// returns deterministic bytes. tests/fake_worker/ runs it inside the real worker process (RunWorker).
#pragma once

#include <memory>
#include <string>

#include "ditserve/engine.h"

namespace ditserve::testing {

// Writes <dir>/model.json of a video model the fake serves: 32..4096 px (multiple of 16), 1..129 frames,
// 1..50 steps, 24 fps by default.
void WriteFakeVideoModel(const std::string& dir, const std::string& name);

// The fake's output for `params`: a PNG of NoiseImage(width, height, seed) (incompressible: ~3 bytes per
// pixel), or an MP4 of MovingFrames(num_frames, width, height) at params.fps and options.video_crf, tagged
// {"seed", "crf"} so tests can see which settings reached the engine.
StatusOr<GenerateOutput> FakeOutput(const GenerateParams& params, const EngineOptions& options);

class FakeEngine final : public Engine {
 public:
  // An EngineFactory: reads options.model_dir's model.json like the real engine does. A file
  // fake_load_error in the model dir makes it fail with that file's text (a model that cannot load).
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  FakeEngine(EngineOptions options, ModelInfo info) : options_(std::move(options)), info_(std::move(info)) {}
  const ModelInfo& info() const override { return info_; }
  StatusOr<GenerateOutput> Generate(const GenerateParams& params, JobControl& control) override;

 private:
  EngineOptions options_;
  ModelInfo info_;
};

}  // namespace ditserve::testing
