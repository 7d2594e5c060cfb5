// The C++ CogVideoX pipeline against diffusers' CogVideoXPipeline on the tiny 2b-, 5b- and 1.5-style models:
// same seed, size, frames, steps. tests/python/cogvideox_parity_reference.py writes diffusers' frames, prompt
// embeddings and the latents after every step; the C++ side runs DiffusionPipeline::GenerateRaw with
// record_intermediates. Latents after every step within a relative error ||a-b||/||b|| of 1e-4, embeddings
// 1e-5, frames within one level. The tiny 2b and 1.5 models carry CogVideoXDDIMScheduler, the 5b one
// CogVideoXDPMScheduler (its noise drawn from the request's generator after the latents).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ditserve/model_info.h"
#include "models/cogvideox/cogvideox_model.h"
#include "models/registry.h"
#include "support/mp4_decode.h"
#include "support/parity.h"
#include "support/recording_job_control.h"
#include "support/test_env.h"

namespace ditserve::models::cogvideox {
namespace {

using testing::ReadRaw;
using testing::RelError;
using testing::ShellQuote;

struct Case {
  std::string model;  // cogvideox-tiny-{2b,5b,1.5}
  std::string prompt, negative_prompt;
  int64_t width, height, frames, steps;
  float guidance;
  bool dynamic_cfg;
  uint64_t seed;
};

GenerateParams ParamsOf(const Case& c) {
  GenerateParams p;
  p.prompt = c.prompt;
  p.negative_prompt = c.negative_prompt;
  p.width = c.width;
  p.height = c.height;
  p.num_frames = c.frames;
  p.steps = c.steps;
  p.guidance_scale = c.guidance;
  p.use_dynamic_cfg = c.dynamic_cfg;
  p.seed = c.seed;
  p.fps = 8;
  p.format = GenerateParams::Format::kMp4;
  return p;
}

StatusOr<std::unique_ptr<runtime::DiffusionPipeline>> Pipeline(const std::string& model) {
  ASSIGN_OR_RETURN(ModelInfo info, ReadModelInfo(testing::TestModelsDir() + "/" + model));
  runtime::PipelineOptions opts;
  opts.info = info;
  return models::CreatePipeline(opts);
}

void RunParity(const Case& c) {
  const std::string models = testing::TestModelsDir();
  const std::string out_dir = testing::MakeTempDir("cogvideox-parity");
  std::ostringstream cmd;
  cmd << testing::PythonExe() << " " << testing::SourceDir() << "/tests/python/cogvideox_parity_reference.py"
      << " --src " << ShellQuote(models + "/src/" + c.model) << " --out " << ShellQuote(out_dir) << " --prompt "
      << ShellQuote(c.prompt) << " --negative-prompt " << ShellQuote(c.negative_prompt) << " --seed " << c.seed
      << " --width " << c.width << " --height " << c.height << " --frames " << c.frames << " --steps " << c.steps
      << " --guidance " << c.guidance << (c.dynamic_cfg ? " --dynamic-cfg" : "") << " > " << out_dir
      << "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.str().c_str()), 0) << "reference failed; see " << out_dir << "/log.txt";
  std::ifstream meta_in(out_dir + "/meta.json");
  const auto meta = nlohmann::json::parse(meta_in);
  const auto want_frames = ReadRaw<uint8_t>(out_dir + "/frames.u8");
  const auto want_latents = ReadRaw<float>(out_dir + "/latents.f32");
  const auto want_steps = ReadRaw<float>(out_dir + "/steps.f32");
  const auto want_embeds = ReadRaw<float>(out_dir + "/embeds.f32");

  auto pipeline = Pipeline(c.model);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  testing::RecordingJobControl control;
  auto got = (*pipeline)->GenerateRaw(ParamsOf(c), control, {.record_intermediates = true});
  ASSERT_TRUE(got.ok()) << got.status().ToString();

  const auto fshape = meta["frames_shape"].get<std::vector<int64_t>>();
  ASSERT_EQ(got->frames, fshape[0]);
  ASSERT_EQ(got->frames, c.frames);
  ASSERT_EQ(got->height, fshape[1]);
  ASSERT_EQ(got->width, fshape[2]);
  ASSERT_EQ(got->rgb.size(), want_frames.size());
  ASSERT_EQ(got->latents.shape, meta["latents_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(got->intermediates.at("prompt_embeds").shape, meta["embeds_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(int64_t(got->step_latents.size()), c.steps);
  ASSERT_EQ(meta["steps"].get<int64_t>(), c.steps);
  ASSERT_EQ(got->step_latents.size() * want_latents.size(), want_steps.size());

  const double embeds_rel =
      RelError(got->intermediates.at("prompt_embeds").data, want_embeds.data(), want_embeds.size());
  EXPECT_LE(embeds_rel, 1e-5) << "T5 prompt embeddings";
  std::string step_rels;
  double worst = 0;
  for (size_t s = 0; s < got->step_latents.size(); ++s) {
    ASSERT_EQ(got->step_latents[s].data.size(), want_latents.size());
    const double rel =
        RelError(got->step_latents[s].data, want_steps.data() + s * want_latents.size(), want_latents.size());
    EXPECT_LE(rel, 1e-4) << "latents after step " << s + 1;
    worst = std::max(worst, rel);
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%.3g", s ? " " : "", rel);
    step_rels += buf;
  }
  int max_pixel = 0;
  size_t differing = 0;
  for (size_t i = 0; i < want_frames.size(); ++i) {
    const int d = std::abs(int(got->rgb[i]) - int(want_frames[i]));
    max_pixel = std::max(max_pixel, d);
    differing += d != 0;
  }
  std::printf("[parity] %s %lldx%lldx%lld steps=%lld guidance=%g dynamic=%d: embeds %.3g, steps [%s]; frames "
              "max|diff| %d, %zu of %zu values differ\n",
              c.model.c_str(), (long long)c.width, (long long)c.height, (long long)c.frames, (long long)c.steps,
              c.guidance, c.dynamic_cfg, embeds_rel, step_rels.c_str(), max_pixel, differing, want_frames.size());
  EXPECT_LE(max_pixel, 1);
  EXPECT_LT(worst, 1e-4);
}

TEST(CogVideoXParityTest, TwoBDdim) {
  RunParity({"cogvideox-tiny-2b", "a red fox running in the snow", "", 48, 32, 9, 3, 6.f, false, 42});
}

TEST(CogVideoXParityTest, TwoBDynamicCfgNegativePrompt) {
  RunParity({"cogvideox-tiny-2b", "a lighthouse at sunset", "blurry", 32, 48, 9, 3, 6.f, true, 7});
}

// 17 frames: 5 latent frames, decoded as a first batch of 3 and a second of 2 with the first's conv cache.
TEST(CogVideoXParityTest, FiveBDpmDynamicCfg) {
  RunParity({"cogvideox-tiny-5b", "an astronaut riding a horse", "", 48, 32, 17, 3, 6.f, true, 3});
}

// 9 frames: 3 latent frames padded to 4 for the temporal patches, the padding dropped before decoding.
TEST(CogVideoXParityTest, OneFiveDdimPaddedFrames) {
  RunParity({"cogvideox-tiny-1.5", "a bowl of ramen", "", 48, 32, 9, 3, 6.f, false, 11});
}

TEST(CogVideoXParityTest, OneFiveWithoutCfg) {
  RunParity({"cogvideox-tiny-1.5", "a castle on a hill", "", 32, 32, 17, 2, 1.f, false, 5});
}

TEST(CogVideoXModelTest, Mp4HasEveryFrame) {
  auto pipeline = Pipeline("cogvideox-tiny-2b");
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  testing::RecordingJobControl control;
  auto out = (*pipeline)->Generate(ParamsOf({"cogvideox-tiny-2b", "a fox", "", 48, 32, 17, 1, 6.f, false, 1}),
                                   control);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->mime_type, "video/mp4");
  EXPECT_EQ(out->frames, 17);
  auto video = testing::DecodeMp4(out->data);
  ASSERT_TRUE(video.ok()) << video.status().ToString();
  EXPECT_EQ(video->frames, 17);
  EXPECT_EQ(video->width, 48);
  EXPECT_EQ(video->height, 32);
  EXPECT_EQ(video->fps_num / std::max(video->fps_den, 1), 8);
}

TEST(CogVideoXModelTest, DynamicGuidanceScaleIsDiffusersFormula) {
  // Python: 1 + 6.0 * ((1 - math.cos(math.pi * ((n - t) / n) ** 5.0)) / 2) at timestep t (not the step index).
  EXPECT_DOUBLE_EQ(DynamicGuidanceScale(6.0, 999.0, 50), 2.291487174551452);
  EXPECT_DOUBLE_EQ(DynamicGuidanceScale(6.0, 979.0, 50), 2.5435028667646318);
  EXPECT_DOUBLE_EQ(DynamicGuidanceScale(6.0, 19.0, 50), 1.123397939968981);
  EXPECT_DOUBLE_EQ(DynamicGuidanceScale(6.0, 500.0, 10), 6.999999999999999);
}

}  // namespace
}  // namespace ditserve::models::cogvideox
