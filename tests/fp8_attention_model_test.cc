// A group's fp8_attention end to end on the CPU (EngineOptions::fp8_attention; the attention op then runs FP8
// attention's reference, engine/runtime/fp8_attention.h): the tiny video models with a padded prompt (the
// key mask) serve their MP4s, close to the exact-attention video but not equal to it (FP8 really ran).
#include <gtest/gtest.h>

#include <string>

#include "ditserve/engine.h"
#include "engine/runtime/attention_op.h"
#include "support/mp4_decode.h"
#include "support/recording_job_control.h"
#include "support/test_env.h"

namespace ditserve {
namespace {

testing::DecodedVideo Generate(const std::string& model, bool fp8_attention, int64_t frames) {
  EngineOptions opts;
  opts.model_dir = testing::TestModelsDir() + "/" + model;
  opts.fp8_attention = fp8_attention;
  auto engine = Engine::Create(opts);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  if (!engine.ok()) return {};
  EXPECT_STREQ(runtime::CurrentAttentionBackend()->name(), fp8_attention ? "sdpa-fp8" : "sdpa");
  GenerateParams p;
  p.prompt = "a red fox running through fresh snow";
  p.width = 32;
  p.height = 32;
  p.num_frames = frames;
  p.steps = 3;
  p.seed = 17;
  p.fps = 8;
  p.guidance_scale = 4.5f;
  p.format = GenerateParams::Format::kMp4;
  testing::RecordingJobControl control;
  auto out = (*engine)->Generate(p, control);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  auto video = testing::DecodeMp4(out->data);
  EXPECT_TRUE(video.ok()) << video.status().ToString();
  return video.ok() ? *video : testing::DecodedVideo{};
}

void ExpectCloseButNotEqual(const std::string& model, int64_t frames) {
  const testing::DecodedVideo exact = Generate(model, false, frames);
  const testing::DecodedVideo fp8 = Generate(model, true, frames);
  runtime::SetAttentionBackend(nullptr);
  ASSERT_EQ(fp8.frames, frames);
  ASSERT_EQ(exact.rgb.size(), fp8.rgb.size());
  ASSERT_FALSE(fp8.rgb.empty());
  const double psnr = testing::Psnr(exact.rgb.data(), fp8.rgb.data(), exact.rgb.size());
  std::printf("%s: FP8 vs exact attention, PSNR %.1f dB over %ld frames\n", model.c_str(), psnr,
              static_cast<long>(frames));
  EXPECT_NE(exact.rgb, fp8.rgb);  // FP8 attention ran
  EXPECT_GT(psnr, 30.0);          // and stayed close
}

TEST(Fp8AttentionModel, HunyuanVideo) { ExpectCloseButNotEqual("hunyuan-video-tiny", 9); }

TEST(Fp8AttentionModel, Mochi) { ExpectCloseButNotEqual("mochi-tiny", 13); }

}  // namespace
}  // namespace ditserve
