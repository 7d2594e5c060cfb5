// The C++ Mochi pipeline against diffusers' MochiPipeline on the tiny model: same seed, size, frames, steps.
// tests/python/mochi_parity_reference.py writes diffusers' frames, prompt embeddings and masks and the latents
// after every step; the C++ side runs runtime::DiffusionPipeline::GenerateRaw with record_intermediates.
// Embeddings: rel. err ||a-b||/||b|| <= 1e-5 and masks equal; latents after every step rel. err <= 1e-4; frames
// within one level. Also: a served request's MP4 decodes to the requested frame count, and a frame count that
// is not 6k+1 is refused naming num_frames.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ditserve/model_info.h"
#include "ditserve/request.h"
#include "models/registry.h"
#include "support/mp4_decode.h"
#include "support/parity.h"
#include "support/recording_job_control.h"
#include "support/test_env.h"

namespace ditserve::models::mochi {
namespace {

using testing::ReadRaw;
using testing::RelError;
using testing::ShellQuote;

constexpr double kEmbedsTolerance = 1e-5;
constexpr double kLatentsTolerance = 1e-4;

struct Case {
  std::string prompt, negative_prompt;
  int64_t width, height, frames, steps;
  float guidance;
  uint64_t seed;
  float cache_threshold = 0.f;  // First Block Cache: the reference applies the same rule on diffusers' blocks
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
  p.seed = c.seed;
  p.fps = 30;
  p.format = GenerateParams::Format::kMp4;
  p.cache_threshold = c.cache_threshold;
  return p;
}

std::unique_ptr<runtime::DiffusionPipeline> Pipeline() {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/mochi-tiny");
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  runtime::PipelineOptions opts;
  opts.info = *info;
  auto pipeline = models::CreatePipeline(opts);
  EXPECT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  return pipeline.ok() ? std::move(*pipeline) : nullptr;
}

void ExpectEmbeds(const runtime::RawOutput& got, const std::string& out_dir, const std::string& file,
                  const std::string& key) {
  const auto want = ReadRaw<float>(out_dir + "/" + file + "embeds.f32");
  const auto want_mask = ReadRaw<float>(out_dir + "/" + file + "mask.f32");
  ASSERT_TRUE(got.intermediates.count(key + "_embeds")) << key;
  const auto& e = got.intermediates.at(key + "_embeds");
  const auto& m = got.intermediates.at(key + "_mask");
  ASSERT_EQ(e.data.size(), want.size()) << key;
  ASSERT_EQ(m.data, want_mask) << key << " mask";
  const double rel = RelError(e.data, want.data(), want.size());
  EXPECT_LE(rel, kEmbedsTolerance) << key;
  int64_t real = 0;
  for (float v : want_mask) real += v != 0;
  std::printf("[parity] %s: %lld real tokens, embeddings rel err %.3g\n", key.c_str(), (long long)real, rel);
}

void RunParity(const Case& c) {
  const std::string models = testing::TestModelsDir();
  const std::string out_dir = testing::MakeTempDir("mochi-parity");
  std::ostringstream cmd;
  cmd << testing::PythonExe() << " " << testing::SourceDir() << "/tests/python/mochi_parity_reference.py"
      << " --src " << ShellQuote(models + "/src/mochi-tiny") << " --out " << ShellQuote(out_dir) << " --prompt "
      << ShellQuote(c.prompt) << " --negative-prompt " << ShellQuote(c.negative_prompt) << " --seed " << c.seed << " --width "
      << c.width << " --height " << c.height << " --frames " << c.frames << " --steps " << c.steps << " --guidance "
      << c.guidance << " --fbcache-threshold " << c.cache_threshold << " > " << out_dir << "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.str().c_str()), 0) << "reference failed; see " << out_dir << "/log.txt";
  std::ifstream meta_in(out_dir + "/meta.json");
  const auto meta = nlohmann::json::parse(meta_in);
  const auto want_video = ReadRaw<uint8_t>(out_dir + "/video.u8");
  const auto want_latents = ReadRaw<float>(out_dir + "/latents.f32");
  const auto want_steps = ReadRaw<float>(out_dir + "/steps.f32");

  auto pipeline = Pipeline();
  ASSERT_NE(pipeline, nullptr);
  testing::RecordingJobControl control;
  auto got = pipeline->GenerateRaw(ParamsOf(c), control, {.record_intermediates = true});
  ASSERT_TRUE(got.ok()) << got.status().ToString();

  ASSERT_EQ(got->frames, meta["frames"].get<int64_t>());
  ASSERT_EQ(got->frames, c.frames);
  ASSERT_EQ(got->width, meta["width"].get<int64_t>());
  ASSERT_EQ(got->height, meta["height"].get<int64_t>());
  ASSERT_EQ(got->latents.shape, meta["latents_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(got->rgb.size(), want_video.size());
  ASSERT_EQ(int64_t(got->step_latents.size()), meta["steps"].get<int64_t>());
  ASSERT_EQ(got->step_latents.size() * want_latents.size(), want_steps.size());

  // The cache skipped exactly the steps the reference rule skipped.
  const auto want_decisions = meta["cache_decisions"].get<std::vector<bool>>();
  EXPECT_EQ(got->cache_decisions, want_decisions);
  if (c.cache_threshold > 0) {
    const int64_t skipped = std::count(want_decisions.begin(), want_decisions.end(), true);
    EXPECT_GT(skipped, 0) << "threshold too low to exercise the cache";
    EXPECT_LT(skipped, c.steps - 1) << "threshold too high to exercise the cache";
    EXPECT_EQ(got->steps_skipped, skipped);
    std::string pattern;
    for (bool d : got->cache_decisions) pattern += d ? 'S' : 'C';
    std::printf("[parity] first block cache threshold %g: %s (S = skipped)\n", c.cache_threshold, pattern.c_str());
  }

  ExpectEmbeds(*got, out_dir, "", "prompt");
  if (c.guidance > 1) ExpectEmbeds(*got, out_dir, "neg_", "negative_prompt");

  std::string step_rels;
  for (size_t s = 0; s < got->step_latents.size(); ++s) {
    ASSERT_EQ(got->step_latents[s].data.size(), want_latents.size());
    const double rel = RelError(got->step_latents[s].data, want_steps.data() + s * want_latents.size(), want_latents.size());
    EXPECT_LE(rel, kLatentsTolerance) << "latents after step " << s + 1;
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%.3g", s ? " " : "", rel);
    step_rels += buf;
  }
  int max_pixel = 0;
  size_t differing = 0;
  for (size_t i = 0; i < want_video.size(); ++i) {
    const int d = std::abs(int(got->rgb[i]) - int(want_video[i]));
    max_pixel = std::max(max_pixel, d);
    differing += d != 0;
  }
  std::printf("[parity] %lldx%lldx%lld steps=%lld guidance=%g: latents rel err per step [%s]; frames max|diff| %d, "
              "%zu of %zu values differ\n",
              (long long)c.width, (long long)c.height, (long long)c.frames, (long long)c.steps, c.guidance,
              step_rels.c_str(), max_pixel, differing, want_video.size());
  EXPECT_LE(max_pixel, 1);
}

// An empty negative prompt: force_zeros_for_empty_prompt (zero ids and mask), true CFG at 4.5.
TEST(MochiParityTest, CfgEmptyNegative) { RunParity({"a red fox in the snow", "", 32, 48, 13, 3, 4.5f, 42}); }

TEST(MochiParityTest, CfgNegativePrompt) {
  RunParity({"an astronaut riding a horse, oil painting", "blurry, low quality", 48, 32, 7, 4, 6.f, 7});
}

// 31 frames = 6 latent frames: the VAE decodes them in three chunks of 2 (kLatentFramesPerChunk).
TEST(MochiParityTest, NoCfg) { RunParity({"a bowl of ramen", "", 32, 32, 31, 2, 1.f, 1}); }

// Measured first-block changes 0.13-0.14 on steps 1-4 and 0.23+ after: threshold 0.2 skips 4 of 8 steps (CSSSSCCC).
TEST(MochiParityTest, CfgFirstBlockCache) {
  Case c{"a red fox in the snow", "fog", 48, 80, 25, 8, 4.5f, 11};
  c.cache_threshold = 0.2f;
  RunParity(c);
}

TEST(MochiServeTest, Mp4HasTheRequestedFrames) {
  auto pipeline = Pipeline();
  ASSERT_NE(pipeline, nullptr);
  testing::RecordingJobControl control;
  auto out = pipeline->Generate(ParamsOf({"a red fox", "", 32, 32, 13, 2, 4.5f, 5}), control);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->frames, 13);
  auto decoded = testing::DecodeMp4(out->data);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->frames, 13);
  EXPECT_EQ(decoded->width, 32);
  EXPECT_EQ(decoded->height, 32);
}

TEST(MochiValidationTest, FramesMustBeWholeLatentFrames) {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/mochi-tiny");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  GenerateParams p = ParamsOf({"a red fox", "", 32, 32, 13, 2, 4.5f, 5});
  EXPECT_TRUE(ValidateParams(*info, p).ok());
  for (int64_t frames : {8, 12, 14, 1}) {
    p.num_frames = frames;
    const Status s = ValidateParams(*info, p);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << frames;
    EXPECT_NE(s.message().find("num_frames"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("6k+1"), std::string::npos) << s.message();
  }
  p.num_frames = 13;
  p.width = 40;  // not a multiple of 16 (VAE 8 x patch 2)
  const Status s = ValidateParams(*info, p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("width"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ditserve::models::mochi
