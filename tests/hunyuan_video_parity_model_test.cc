// The C++ HunyuanVideo pipeline against diffusers' HunyuanVideoPipeline (0.34, float32) on the tiny model: same
// seed, size, frames, steps. tests/python/hunyuan_video_parity_reference.py writes diffusers' frames, prompt
// embeddings, attention mask, pooled CLIP output and the latents after every step. Embeddings and mask must be
// equal up to a relative error of 1e-5 (the same TorchScript-exported encoders), the latents after every step
// within 1e-4, the frames within one level. The tiny export's 32-pixel VAE tiles make the larger cases decode
// through the spatial and temporal tiling.
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
#include "models/registry.h"
#include "support/parity.h"
#include "support/recording_job_control.h"
#include "support/test_env.h"

namespace ditserve::models::hunyuan_video {
namespace {

using testing::ReadRaw;
using testing::RelError;
using testing::ShellQuote;

constexpr double kEmbedsTolerance = 1e-5;
constexpr double kLatentsTolerance = 1e-4;
constexpr char kModel[] = "hunyuan-video-tiny";

struct Case {
  std::string prompt, negative_prompt;
  int64_t width, height, frames, steps;
  float guidance, true_cfg;
  uint64_t seed;
  float cache_threshold = 0.f;  // First Block Cache: the reference applies the same rule on diffusers' blocks
};

void RunParity(const Case& c) {
  const std::string models = testing::TestModelsDir();
  const std::string out_dir = testing::MakeTempDir("hunyuan-video-parity");
  std::ostringstream cmd;
  cmd << testing::PythonExe() << " " << testing::SourceDir() << "/tests/python/hunyuan_video_parity_reference.py"
      << " --src " << ShellQuote(models + "/src/" + kModel) << " --model " << ShellQuote(models + "/" + kModel)
      << " --out " << ShellQuote(out_dir) << " --prompt " << ShellQuote(c.prompt) << " --negative-prompt "
      << ShellQuote(c.negative_prompt) << " --seed " << c.seed << " --width " << c.width << " --height " << c.height
      << " --frames " << c.frames << " --steps " << c.steps << " --guidance " << c.guidance << " --true-cfg "
      << c.true_cfg << " --fbcache-threshold " << c.cache_threshold << " > " << out_dir << "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.str().c_str()), 0) << "reference failed; see " << out_dir << "/log.txt";
  std::ifstream meta_in(out_dir + "/meta.json");
  const auto meta = nlohmann::json::parse(meta_in);
  const auto want_frames = ReadRaw<uint8_t>(out_dir + "/frames.u8");
  const auto want_steps = ReadRaw<float>(out_dir + "/steps.f32");
  const auto want_embeds = ReadRaw<float>(out_dir + "/embeds.f32");
  const auto want_mask = ReadRaw<float>(out_dir + "/mask.f32");
  const auto want_pooled = ReadRaw<float>(out_dir + "/pooled.f32");

  auto info = ReadModelInfo(models + "/" + kModel);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  runtime::PipelineOptions opts;
  opts.info = *info;
  auto pipeline = models::CreatePipeline(opts);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  GenerateParams p;
  p.prompt = c.prompt;
  p.negative_prompt = c.negative_prompt;
  p.width = c.width;
  p.height = c.height;
  p.num_frames = c.frames;
  p.steps = c.steps;
  p.guidance_scale = c.guidance;
  p.true_cfg_scale = c.true_cfg;
  p.seed = c.seed;
  p.cache_threshold = c.cache_threshold;
  testing::RecordingJobControl control;
  auto got = (*pipeline)->GenerateRaw(p, control, {.record_intermediates = true});
  ASSERT_TRUE(got.ok()) << got.status().ToString();

  ASSERT_EQ(got->frames, meta["frames"].get<int64_t>());
  ASSERT_EQ(got->frames, c.frames);
  ASSERT_EQ(got->width, meta["width"].get<int64_t>());
  ASSERT_EQ(got->height, meta["height"].get<int64_t>());
  ASSERT_EQ(got->rgb.size(), want_frames.size());
  ASSERT_EQ(got->latents.shape, meta["latents_shape"].get<std::vector<int64_t>>());
  const auto& embeds = got->intermediates.at("prompt_embeds");
  const auto& mask = got->intermediates.at("prompt_attention_mask");
  const auto& pooled = got->intermediates.at("pooled_embeds");
  ASSERT_EQ(embeds.shape, meta["embeds_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(mask.shape, meta["mask_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(pooled.shape, meta["pooled_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(embeds.data.size(), want_embeds.size());
  ASSERT_EQ(pooled.data.size(), want_pooled.size());
  ASSERT_EQ(int64_t(got->step_latents.size()), c.steps);
  const size_t n = got->latents.data.size();
  ASSERT_EQ(want_steps.size(), n * c.steps);

  // The cache skipped exactly the steps the reference rule skipped.
  const auto want_decisions = meta["cache_decisions"].get<std::vector<bool>>();
  EXPECT_EQ(got->cache_decisions, want_decisions);
  if (c.cache_threshold > 0) {
    const int64_t skipped = std::count(want_decisions.begin(), want_decisions.end(), true);
    EXPECT_GT(skipped, 0) << "threshold too low to exercise the cache";
    EXPECT_EQ(got->steps_skipped, skipped);
  }

  EXPECT_EQ(mask.data, want_mask) << "attention mask after the crop";
  const double valid = std::count(want_mask.begin(), want_mask.end(), 1.f);
  EXPECT_GT(valid, 0);
  EXPECT_LT(valid, double(want_mask.size())) << "the prompt should leave padding (the key mask matters)";
  const double embeds_rel = RelError(embeds.data, want_embeds.data(), want_embeds.size());
  const double pooled_rel = RelError(pooled.data, want_pooled.data(), want_pooled.size());
  EXPECT_LE(embeds_rel, kEmbedsTolerance) << "Llama hidden_states[-3]";
  EXPECT_LE(pooled_rel, kEmbedsTolerance) << "CLIP pooled output";
  std::string step_rels;
  for (int64_t s = 0; s < c.steps; ++s) {
    const double rel = RelError(got->step_latents[s].data, want_steps.data() + s * n, n);
    EXPECT_LE(rel, kLatentsTolerance) << "latents after step " << s + 1;
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
  std::printf("[parity] hunyuan_video %lldx%lldx%lld steps=%lld true_cfg=%g: rel err embeds %.3g, pooled %.3g, "
              "steps [%s]; pixels max|diff| %d, %zu of %zu values differ\n",
              (long long)c.width, (long long)c.height, (long long)c.frames, (long long)c.steps, c.true_cfg, embeds_rel,
              pooled_rel, step_rels.c_str(), max_pixel, differing, want_frames.size());
  EXPECT_LE(max_pixel, 1);
}

// Two latent frames, no tiling (32 px frames fit the 32 px tile).
TEST(HunyuanVideoParityTest, FiveFrames32x32) {
  RunParity({"a cat walks on the grass, realistic", "", 32, 32, 5, 3, 6.f, 1.f, 7});
}

// Spatial tiling: 48 px wide frames decode as two blended 32 px tiles.
TEST(HunyuanVideoParityTest, NineFrames48x32SpatialTiles) {
  RunParity({"A red boat on a calm lake; mountains at dawn.", "", 48, 32, 9, 2, 6.f, 1.f, 3});
}

// Temporal tiling: 21 frames = 6 latent frames, decoded as two blended chunks (diffusers' framewise default).
TEST(HunyuanVideoParityTest, TwentyOneFramesTemporalTiles) {
  RunParity({"fireworks over a city", "", 32, 16, 21, 2, 6.f, 1.f, 11});
}

// True CFG: a negative prompt with true_cfg_scale > 1 runs a second transformer pass per step.
TEST(HunyuanVideoParityTest, TrueCfg) {
  RunParity({"a castle on a hill", "blurry, low quality", 32, 16, 5, 2, 6.f, 4.f, 99});
}

// First Block Cache: at this threshold the tiny model's first-block changes (0.14..0.41 between steps, every
// one > 0.03 away from it) skip steps 3 and 4 of 10 (diffusers-side rule in the reference script).
TEST(HunyuanVideoParityTest, FirstBlockCache) {
  Case c{"a red fox", "", 32, 16, 5, 10, 6.f, 1.f, 3};
  c.cache_threshold = 0.25f;
  RunParity(c);
}

// The up-front memory estimate (FamilyModel::RequestDeviceBytes, what the core compares with the free device
// memory) grows with the frames and the frame size.
TEST(HunyuanVideoMemoryEstimate, GrowsWithFramesAndSize) {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/" + kModel);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  runtime::PipelineOptions opts;
  opts.info = *info;
  auto pipeline = models::CreatePipeline(opts);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  auto bytes = [&](int64_t w, int64_t h, int64_t frames) {
    GenerateParams p;
    p.width = w;
    p.height = h;
    p.num_frames = frames;
    return (*pipeline)->model().RequestDeviceBytes(p);
  };
  EXPECT_GT(bytes(32, 32, 5), 0u);
  EXPECT_LT(bytes(32, 32, 5), bytes(64, 64, 5));
  EXPECT_LT(bytes(64, 64, 5), bytes(64, 64, 33));
  EXPECT_LT(bytes(64, 64, 33), bytes(256, 256, 33));
}

}  // namespace
}  // namespace ditserve::models::hunyuan_video
