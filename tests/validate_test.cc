#include "server/validate.h"

#include "ditserve/request.h"
#include "server/request_params.h"

#include <cmath>

#include <gtest/gtest.h>

namespace ditserve::server {
namespace {

std::map<std::string, ModelInfo> Models() {
  ModelInfo m;
  m.name = "flux";
  m.family = "flux";
  m.width = {256, 2048, 16, 1024};
  m.height = {256, 2048, 16, 1024};
  m.num_frames = {1, 1, 1, 1};
  m.steps = {1, 100, 1, 28};
  m.default_guidance_scale = 3.5f;
  m.max_prompt_chars = 100;
  return {{"flux", m}};
}

v1::GenerateRequest Base() {
  v1::GenerateRequest r;
  r.set_model("flux");
  r.set_prompt("a cat");
  return r;
}

TEST(Validate, FillsDefaultsAndSeed) {
  auto r = ValidateAndResolve(Base(), Models(), 1234);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->width(), 1024u);
  EXPECT_EQ(r->height(), 1024u);
  EXPECT_EQ(r->num_frames(), 1u);
  EXPECT_EQ(r->num_inference_steps(), 28u);
  EXPECT_FLOAT_EQ(r->guidance_scale(), 3.5f);
  EXPECT_FLOAT_EQ(r->true_cfg_scale(), 1.f);
  EXPECT_EQ(r->seed(), 1234u);
  EXPECT_EQ(r->output_format(), v1::OUTPUT_FORMAT_PNG);
}

TEST(Validate, KeepsExplicitSeedAndEmptyModelPicksTheOnlyOne) {
  auto req = Base();
  req.clear_model();
  req.set_seed(0);
  auto r = ValidateAndResolve(req, Models(), 99);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->model(), "flux");
  EXPECT_EQ(r->seed(), 0u);
}

TEST(Validate, RejectsNamingFieldAndRange) {
  struct Case {
    std::function<void(v1::GenerateRequest&)> mutate;
    std::string message;
  };
  const Case cases[] = {
      {[](auto& r) { r.set_model("sd3"); }, "model: unknown model 'sd3'; available: flux"},
      {[](auto& r) { r.set_prompt(""); }, "prompt: must not be empty"},
      {[](auto& r) { r.set_prompt(std::string(101, 'x')); }, "prompt: 101 characters; allowed at most 100"},
      {[](auto& r) { r.set_negative_prompt(std::string(101, 'x')); }, "negative_prompt: 101 characters"},
      {[](auto& r) { r.set_width(1000); }, "width: 1000 is not allowed; allowed [256, 2048], multiple of 16"},
      {[](auto& r) { r.set_height(4096); }, "height: 4096 is not allowed; allowed [256, 2048], multiple of 16"},
      {[](auto& r) { r.set_num_inference_steps(101); }, "num_inference_steps: 101 is not allowed; allowed [1, 100]"},
      {[](auto& r) { r.set_num_frames(2); }, "num_frames: 2 is not allowed"},
      {[](auto& r) { r.set_guidance_scale(std::nanf("")); }, "guidance_scale:"},
      {[](auto& r) { r.set_true_cfg_scale(0.5f); }, "true_cfg_scale: 0.5 is not allowed; allowed [1, 100]"},
      {[](auto& r) { r.set_cache_threshold(-0.1f); }, "cache_threshold:"},
      {[](auto& r) { r.set_output_format(v1::OUTPUT_FORMAT_MP4); }, "output_format: OUTPUT_FORMAT_MP4 is not available"},
      {[](auto& r) { r.set_output_format(static_cast<v1::OutputFormat>(9)); }, "output_format: unknown value 9"},
      {[](auto& r) { r.set_fps(30); }, "fps: only video models"},
      {[](auto& r) { r.set_client_request_id(std::string(200, 'x')); }, "client_request_id: allowed at most 128"},
  };
  for (const auto& c : cases) {
    auto req = Base();
    c.mutate(req);
    auto r = ValidateAndResolve(req, Models(), 1);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind(c.message, 0), 0u) << r.status().message();
  }
}

TEST(Validate, CountsUtf8CharactersNotBytes) {
  auto req = Base();
  std::string cjk;
  for (int i = 0; i < 100; ++i) cjk += "\xE7\x8C\xAB";  // 猫, 3 bytes each
  req.set_prompt(cjk);
  EXPECT_TRUE(ValidateAndResolve(req, Models(), 1).ok());
}

// The coordinator and the engine share one validator: what the coordinator queues, every rank accepts.
// (A 1,400-character CJK prompt is 4,200 bytes: the engine once limited bytes and rejected it after queueing.)
TEST(Validate, EngineAcceptsWhatTheCoordinatorQueued) {
  auto models = Models();
  models["flux"].max_prompt_chars = 4096;
  auto req = Base();
  std::string cjk;
  for (int i = 0; i < 1400; ++i) cjk += "\xE7\x8C\xAB";
  req.set_prompt(cjk);
  req.set_negative_prompt(cjk);
  auto r = ValidateAndResolve(req, models, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Status engine = ValidateParams(models["flux"], ToParams(*r));
  EXPECT_TRUE(engine.ok()) << engine.ToString();
  std::string too_long = cjk + cjk + cjk;  // 4,200 characters
  req.set_prompt(too_long);
  auto rejected = ValidateAndResolve(req, models, 1);
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.status().message(), "prompt: 4200 characters; allowed at most 4096");
}

TEST(Validate, FrameCountsOfTheForm4kPlus1) {
  auto models = Models();
  ModelInfo& m = models["flux"];
  m.output = OutputKind::kVideo;
  m.num_frames = {1, 129, 4, 61, 1};
  EXPECT_EQ(m.num_frames.Describe(), "[1, 129], 4k+1");
  auto req = Base();
  for (uint32_t ok : {1u, 5u, 61u, 129u}) {
    req.set_num_frames(ok);
    EXPECT_TRUE(ValidateAndResolve(req, models, 1).ok()) << ok;
  }
  req.set_num_frames(60);
  auto r = ValidateAndResolve(req, models, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "num_frames: 60 is not allowed; allowed [1, 129], 4k+1");
  req.clear_num_frames();
  r = ValidateAndResolve(req, models, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->num_frames(), 61u);
  EXPECT_EQ(r->output_format(), v1::OUTPUT_FORMAT_MP4);
  EXPECT_EQ(r->fps(), 24u);
}

TEST(Validate, DynamicCfgOnlyForCogVideoX) {
  auto models = Models();
  auto req = Base();
  req.set_use_dynamic_cfg(true);
  auto r = ValidateAndResolve(req, models, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "use_dynamic_cfg: only CogVideoX models take it; allowed false for 'flux'");
  models["flux"].family = "cogvideox";
  r = ValidateAndResolve(req, models, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(ToParams(*r).use_dynamic_cfg);
}

// Before: a 16 KB unknown model name was echoed whole, the status message exceeded gRPC's metadata limit
// and the client got RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT.
TEST(Validate, UnknownModelNameIsEchoedTruncated) {
  v1::GenerateRequest r;
  r.set_model(std::string(16384, 'x'));
  r.set_prompt("a cat");
  auto v = ValidateAndResolve(r, Models(), 1);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
  EXPECT_LT(v.status().message().size(), 200u);
  EXPECT_NE(v.status().message().find("(16384 bytes)"), std::string::npos) << v.status().message();
}

// Defect 5: the prompt limit is in characters on both sides (one validator, ValidateParams, which the
// coordinator runs before queueing and every rank runs again): a 1,400-character CJK prompt (4,200 bytes)
// passes, 1,401 characters do not.
TEST(Validate, PromptLimitIsInCharactersNotBytes) {
  auto models = Models();
  models["flux"].max_prompt_chars = 1400;
  std::string cjk;
  for (int i = 0; i < 1400; ++i) cjk += "\xe7\x8c\xab";
  v1::GenerateRequest r = Base();
  r.set_prompt(cjk);
  auto v = ValidateAndResolve(r, models, 1);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(ValidateParams(models.at("flux"), ToParams(*v)).ok());
  r.set_prompt(cjk + "\xe7\x8c\xab");
  v = ValidateAndResolve(r, models, 1);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("prompt: 1401 characters"), std::string::npos) << v.status().message();
}

}  // namespace
}  // namespace ditserve::server
