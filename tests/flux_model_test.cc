// Engine on the tiny FLUX models (DITSERVE_TEST_MODELS, made by scripts/make_test_models.py): PNG output,
// determinism per seed, cancellation and progress events.
#include <gtest/gtest.h>

#include "ditserve/engine.h"
#include "engine/io/png.h"
#include "support/recording_job_control.h"
#include "support/test_env.h"

namespace ditserve {
namespace {

using testing::RecordingJobControl;

class FluxModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EngineOptions opts;
    opts.model_dir = testing::TestModelsDir() + "/flux-tiny-dev";
    auto engine = Engine::Create(opts);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value().release();
  }
  static void TearDownTestSuite() {
    delete engine_;
    engine_ = nullptr;
  }

  static GenerateParams Params(int64_t w, int64_t h, uint64_t seed) {
    GenerateParams p;
    p.prompt = "a photo of a cat wearing a tiny hat";
    p.width = w;
    p.height = h;
    p.steps = 2;
    p.guidance_scale = 3.5f;
    p.seed = seed;
    return p;
  }

  static Engine* engine_;
};
Engine* FluxModelTest::engine_ = nullptr;

TEST_F(FluxModelTest, InfoComesFromModelJson) {
  ASSERT_NE(engine_, nullptr);
  const ModelInfo& info = engine_->info();
  EXPECT_EQ(info.family, "flux");
  EXPECT_EQ(info.variant, "dev");
  EXPECT_EQ(info.name, "flux-tiny-dev");
  EXPECT_TRUE(info.guidance_embeds);
  EXPECT_EQ(info.output, OutputKind::kImage);
  EXPECT_EQ(info.num_frames.max, 1);
  EXPECT_EQ(info.weights, "float32");
}

TEST(FluxModelInfo, Fp8ExportNamesItsWeights) {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/flux-tiny-dev-fp8");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->weights, "fp8_e4m3");
}

TEST_F(FluxModelTest, GeneratesPngOfRequestedSize) {
  ASSERT_NE(engine_, nullptr);
  for (auto [w, h] : {std::pair<int64_t, int64_t>{64, 64}, {96, 48}}) {
    RecordingJobControl control;
    auto out = engine_->Generate(Params(w, h, 7), control);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(out->mime_type, "image/png");
    EXPECT_EQ(out->width, w);
    EXPECT_EQ(out->height, h);
    EXPECT_EQ(out->seed, 7u);
    EXPECT_EQ(out->steps_computed, 2);
    auto png = io::InspectPng(out->data);
    ASSERT_TRUE(png.ok()) << png.status().ToString();
    EXPECT_EQ(png->width, w);
    EXPECT_EQ(png->height, h);
    EXPECT_EQ(png->channels, 3);
    bool has_prompt = false;
    for (const auto& [k, v] : png->text) {
      if (k == "prompt") has_prompt = v == "a photo of a cat wearing a tiny hat";
    }
    EXPECT_TRUE(has_prompt);
    ASSERT_EQ(out->timings.size(), 4u);
    EXPECT_EQ(out->timings[0].stage, Stage::kTextEncode);
    EXPECT_EQ(out->timings[3].stage, Stage::kEncode);
  }
}

TEST_F(FluxModelTest, SameSeedSameBytesDifferentSeedDifferentImage) {
  ASSERT_NE(engine_, nullptr);
  RecordingJobControl c1, c2, c3;
  auto a = engine_->Generate(Params(64, 64, 1234), c1);
  auto b = engine_->Generate(Params(64, 64, 1234), c2);
  auto c = engine_->Generate(Params(64, 64, 1235), c3);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->data, b->data);
  EXPECT_NE(a->data, c->data);
}

// The cache path that never skips (threshold below any change) runs the blocks in two calls instead of
// one: the bytes must not change. Threshold 0 is the uncached path itself.
TEST_F(FluxModelTest, FirstBlockCacheThatNeverSkipsIsBitIdenticalToNoCache) {
  testing::RecordingJobControl c1, c2;
  GenerateParams p = Params(64, 64, 5);
  auto plain = engine_->Generate(p, c1);
  p.cache_threshold = 1e-9f;
  auto cached = engine_->Generate(p, c2);
  ASSERT_TRUE(plain.ok() && cached.ok());
  EXPECT_EQ(cached->steps_skipped, 0);
  EXPECT_EQ(cached->steps_computed, p.steps);
  EXPECT_EQ(plain->data, cached->data);
}

TEST_F(FluxModelTest, ProgressEventsInOrder) {
  ASSERT_NE(engine_, nullptr);
  GenerateParams p = Params(64, 64, 3);
  p.steps = 3;
  RecordingJobControl control;
  ASSERT_TRUE(engine_->Generate(p, control).ok());
  using E = RecordingJobControl::Event;
  const std::vector<E> want = {{Stage::kTextEncode, 1, 1}, {Stage::kDenoise, 1, 3}, {Stage::kDenoise, 2, 3},
                               {Stage::kDenoise, 3, 3},    {Stage::kDecode, 1, 1},  {Stage::kEncode, 1, 1}};
  EXPECT_EQ(control.events, want);
  EXPECT_GE(control.polls, 3);
}

TEST_F(FluxModelTest, CancellationStopsAtStepBoundary) {
  ASSERT_NE(engine_, nullptr);
  GenerateParams p = Params(64, 64, 3);
  p.steps = 4;
  for (int64_t after : {0, 2}) {
    RecordingJobControl control(after);
    auto out = engine_->Generate(p, control);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kCancelled) << out.status().ToString();
    int64_t denoise_events = 0;
    for (const auto& e : control.events) denoise_events += e.stage == Stage::kDenoise;
    EXPECT_EQ(denoise_events, after);
  }
}

TEST_F(FluxModelTest, RejectsOutOfRangeParams) {
  ASSERT_NE(engine_, nullptr);
  RecordingJobControl control;
  EXPECT_EQ(engine_->Generate(Params(66, 64, 1), control).status().code(), StatusCode::kInvalidArgument);
  GenerateParams p = Params(64, 64, 1);
  p.steps = 0;
  EXPECT_EQ(engine_->Generate(p, control).status().code(), StatusCode::kInvalidArgument);
}

TEST(FluxEngineCreateTest, Errors) {
  EngineOptions opts;
  opts.model_dir = testing::TestModelsDir() + "/does-not-exist";
  EXPECT_EQ(Engine::Create(opts).status().code(), StatusCode::kNotFound);

  opts.model_dir = testing::TestModelsDir() + "/flux-tiny-schnell";
  opts.world_size = 2;
  opts.ulysses = 2;
  auto multi = Engine::Create(opts);
  // A multi-rank group needs its rendezvous point.
  EXPECT_EQ(multi.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(multi.status().message().find("TCPStore port"), std::string::npos) << multi.status().ToString();

  opts.world_size = 1;
  opts.ulysses = 1;
  opts.device = "tpu:0";
  EXPECT_EQ(Engine::Create(opts).status().code(), StatusCode::kInvalidArgument);
}

TEST(FluxEngineCreateTest, SchnellGenerates) {
  EngineOptions opts;
  opts.model_dir = testing::TestModelsDir() + "/flux-tiny-schnell";
  opts.intra_op_threads = 1;
  auto engine = Engine::Create(opts);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_FALSE((*engine)->info().guidance_embeds);
  GenerateParams p;
  p.prompt = "a lighthouse";
  p.width = 48;
  p.height = 80;
  p.steps = 2;
  p.guidance_scale = 0.f;
  p.seed = 5;
  RecordingJobControl control;
  auto out = (*engine)->Generate(p, control);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  auto png = io::InspectPng(out->data);
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png->width, 48);
  EXPECT_EQ(png->height, 80);
}

}  // namespace
}  // namespace ditserve
