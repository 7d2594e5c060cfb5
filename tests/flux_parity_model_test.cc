// The C++ FLUX pipeline against diffusers' FluxPipeline on the tiny models: same seed, size, steps.
// tests/python/flux_parity_reference.py writes diffusers' pixels, prompt embeddings and the latents after
// every step; the C++ side uses runtime::DiffusionPipeline::GenerateRaw (no PNG) with record_intermediates. Pixels may
// differ by at most one level; embeddings by a relative error ||a-b||/||b|| of 1e-5, latents by 1e-4.
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
#include "models/registry.h"
#include "support/parity.h"
#include "support/recording_job_control.h"
#include "support/test_env.h"

namespace ditserve::models::flux {
namespace {

using testing::ReadRaw;
using testing::RelError;
using testing::ShellQuote;

constexpr double kEmbedsTolerance = 1e-5;
constexpr double kLatentsTolerance = 1e-4;

struct Case {
  std::string model;  // flux-tiny-dev / flux-tiny-schnell
  std::string prompt, negative_prompt;
  int64_t width, height, steps;
  float guidance, true_cfg;
  uint64_t seed;
  // First Block Cache: the reference applies the same rule on diffusers' blocks.
  float cache_threshold = 0.f;
  int64_t cache_warmup = 1, cache_max_skips = 0;
};

void RunParity(const Case& c) {
  const std::string models = testing::TestModelsDir();
  // The model's T5 length (schnell exports 256) is what diffusers must be called with.
  std::ifstream model_json(models + "/" + c.model + "/model.json");
  const int64_t t5_length = nlohmann::json::parse(model_json)["text_encoder_2"]["max_sequence_length"].get<int64_t>();
  // diffusers reference.
  const std::string out_dir = testing::MakeTempDir("flux-parity");
  std::ostringstream cmd;
  cmd << testing::PythonExe() << " " << testing::SourceDir() << "/tests/python/flux_parity_reference.py"
      << " --src " << ShellQuote(models + "/src/" + c.model) << " --out " << ShellQuote(out_dir) << " --prompt "
      << ShellQuote(c.prompt) << " --negative-prompt " << ShellQuote(c.negative_prompt) << " --seed " << c.seed
      << " --width " << c.width << " --height " << c.height << " --steps " << c.steps << " --guidance "
      << c.guidance << " --true-cfg " << c.true_cfg << " --max-sequence-length " << t5_length << " --fbcache-threshold " << c.cache_threshold
      << " --fbcache-warmup " << c.cache_warmup << " --fbcache-max-skips " << c.cache_max_skips << " > " << out_dir << "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.str().c_str()), 0) << "reference failed; see " << out_dir << "/log.txt";
  std::ifstream meta_in(out_dir + "/meta.json");
  const auto meta = nlohmann::json::parse(meta_in);
  const auto want_pixels = ReadRaw<uint8_t>(out_dir + "/image.u8");
  const auto want_latents = ReadRaw<float>(out_dir + "/latents.f32");
  const auto want_steps = ReadRaw<float>(out_dir + "/steps.f32");
  const auto want_pooled = ReadRaw<float>(out_dir + "/pooled.f32");
  const auto want_t5 = ReadRaw<float>(out_dir + "/t5.f32");

  // ditserve.
  auto info = ReadModelInfo(models + "/" + c.model);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  runtime::PipelineOptions opts;
  opts.info = *info;
  opts.cache_warmup_steps = c.cache_warmup;
  opts.cache_max_consecutive_skips = c.cache_max_skips;
  auto pipeline = models::CreatePipeline(opts);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  GenerateParams p;
  p.prompt = c.prompt;
  p.negative_prompt = c.negative_prompt;
  p.width = c.width;
  p.height = c.height;
  p.steps = c.steps;
  p.guidance_scale = c.guidance;
  p.true_cfg_scale = c.true_cfg;
  p.seed = c.seed;
  p.cache_threshold = c.cache_threshold;
  testing::RecordingJobControl control;
  auto got = (*pipeline)->GenerateRaw(p, control, {.record_intermediates = true});
  ASSERT_TRUE(got.ok()) << got.status().ToString();

  ASSERT_EQ(got->width, meta["width"].get<int64_t>());
  ASSERT_EQ(got->height, meta["height"].get<int64_t>());
  ASSERT_EQ(got->latents.shape, meta["latents_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(got->latents.data.size(), want_latents.size());
  ASSERT_EQ(got->rgb.size(), want_pixels.size());
  ASSERT_EQ(got->intermediates.at("pooled_embeds").shape, meta["pooled_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(got->intermediates.at("t5_embeds").shape, meta["t5_shape"].get<std::vector<int64_t>>());
  ASSERT_EQ(got->intermediates.at("pooled_embeds").data.size(), want_pooled.size());
  ASSERT_EQ(got->intermediates.at("t5_embeds").data.size(), want_t5.size());
  ASSERT_EQ(int64_t(got->step_latents.size()), meta["steps"].get<int64_t>());
  ASSERT_EQ(got->step_latents.size() * want_latents.size(), want_steps.size());

  // The cache skipped exactly the steps the reference rule skipped.
  const auto want_decisions = meta["cache_decisions"].get<std::vector<bool>>();
  EXPECT_EQ(got->cache_decisions, want_decisions);
  const int64_t want_skipped = std::count(want_decisions.begin(), want_decisions.end(), true);
  EXPECT_EQ(got->steps_skipped, want_skipped);
  EXPECT_EQ(got->steps_computed + got->steps_skipped, c.steps);
  if (c.cache_threshold > 0) {
    EXPECT_GT(want_skipped, 0) << "threshold too low to exercise the cache";
    EXPECT_LT(want_skipped, c.steps - 1) << "threshold too high to exercise the cache";
    std::string pattern;
    for (bool d : got->cache_decisions) pattern += d ? 'S' : 'C';
    std::printf("[parity] first block cache threshold %g warmup %lld cap %lld: %s (S = skipped)\n", c.cache_threshold,
                (long long)c.cache_warmup, (long long)c.cache_max_skips, pattern.c_str());
  }

  // Embeddings, then each step: the first step off says where a drift starts.
  const double pooled_rel = RelError(got->intermediates.at("pooled_embeds").data, want_pooled.data(), want_pooled.size());
  const double t5_rel = RelError(got->intermediates.at("t5_embeds").data, want_t5.data(), want_t5.size());
  EXPECT_LE(pooled_rel, kEmbedsTolerance) << "CLIP pooled embeddings";
  EXPECT_LE(t5_rel, kEmbedsTolerance) << "T5 hidden states";
  std::string step_rels;
  for (size_t s = 0; s < got->step_latents.size(); ++s) {
    ASSERT_EQ(got->step_latents[s].data.size(), want_latents.size());
    const double rel = RelError(got->step_latents[s].data, want_steps.data() + s * want_latents.size(), want_latents.size());
    EXPECT_LE(rel, kLatentsTolerance) << "latents after step " << s + 1;
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%.3g", s ? " " : "", rel);
    step_rels += buf;
  }
  const double final_rel = RelError(got->latents.data, want_latents.data(), want_latents.size());
  EXPECT_LE(final_rel, kLatentsTolerance) << "final latents";

  double max_latent = 0, max_ref = 0;
  for (size_t i = 0; i < want_latents.size(); ++i) {
    max_latent = std::max(max_latent, std::fabs(double(got->latents.data[i]) - double(want_latents[i])));
    max_ref = std::max(max_ref, std::fabs(double(want_latents[i])));
  }
  int max_pixel = 0;
  size_t differing = 0;
  for (size_t i = 0; i < want_pixels.size(); ++i) {
    const int d = std::abs(int(got->rgb[i]) - int(want_pixels[i]));
    max_pixel = std::max(max_pixel, d);
    differing += d != 0;
  }
  std::printf("[parity] %s %lldx%lld steps=%lld true_cfg=%g: rel err pooled %.3g, t5 %.3g, steps [%s], "
              "final %.3g; latents max|diff| %.3g (max|ref| %.3g), pixels max|diff| %d, %zu of %zu values differ\n",
              c.model.c_str(), (long long)c.width, (long long)c.height, (long long)c.steps, c.true_cfg, pooled_rel,
              t5_rel, step_rels.c_str(), final_rel, max_latent, max_ref, max_pixel, differing, want_pixels.size());
  EXPECT_LE(max_pixel, 1);
  EXPECT_LE(max_latent, 1e-4 * std::max(1.0, max_ref));
}

TEST(FluxParityTest, Dev64x64) {
  RunParity({"flux-tiny-dev", "a red fox in the snow", "", 64, 64, 2, 3.5f, 1.f, 42});
}

TEST(FluxParityTest, Dev96x48ThreeSteps) {
  RunParity({"flux-tiny-dev", "an astronaut riding a horse, oil painting", "", 96, 48, 3, 4.f, 1.f, 7});
}

TEST(FluxParityTest, Schnell) {
  RunParity({"flux-tiny-schnell", "a bowl of ramen", "", 64, 48, 2, 0.f, 1.f, 1});
}

// Thresholds chosen from the tiny model's measured first-block changes (0.19..0.32 between steps) so the
// pattern mixes skipped and computed steps, with margins > 0.005 to the threshold.
TEST(FluxParityTest, DevFirstBlockCache) {
  Case c{"flux-tiny-dev", "a red fox", "", 64, 64, 8, 3.5f, 1.f, 3};
  c.cache_threshold = 0.3f;
  RunParity(c);
}

TEST(FluxParityTest, DevFirstBlockCacheWarmupAndCap) {
  Case c{"flux-tiny-dev", "a red fox", "", 64, 64, 8, 3.5f, 1.f, 3};
  c.cache_threshold = 0.3f;
  c.cache_warmup = 2;
  c.cache_max_skips = 1;
  RunParity(c);
}

TEST(FluxParityTest, DevTrueCfg) {
  RunParity({"flux-tiny-dev", "a castle on a hill", "blurry, low quality", 48, 64, 2, 3.5f, 4.f, 99});
}

}  // namespace
}  // namespace ditserve::models::flux
