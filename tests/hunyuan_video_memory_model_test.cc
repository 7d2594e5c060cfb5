// Memory limits of a HunyuanVideo request (tiny model, CPU):
//  - a request whose estimate (FamilyModel::RequestDeviceBytes) exceeds the memory it may use is refused up
//    front with RESOURCE_EXHAUSTED naming both figures, before any stage runs; at the estimate it runs.
//    PipelineOptions::device_memory_limit stands in for a device with little free memory.
//  - an allocation failure during a request fails that request only, with RESOURCE_EXHAUSTED: the next request
//    on the same pipeline succeeds with exactly the frames it gives on a fresh pipeline. The failure is injected
//    at the decode stage as the engine meets it: an exported module's allocation failing inside the TorchScript
//    interpreter (which rethrows it as a plain std::runtime_error, the c10::OutOfMemoryError type lost), and
//    c10::OutOfMemoryError from eager libtorch code. Any other error stays INTERNAL.
// A real CUDA out-of-memory is hunyuan_video_oom_model_gpu_test.
#include <gtest/gtest.h>
#include <torch/jit.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "ditserve/model_info.h"
#include "engine/runtime/diffusion_pipeline.h"
#include "models/hunyuan_video/hunyuan_video_model.h"
#include "models/registry.h"
#include "support/recording_job_control.h"
#include "support/test_env.h"

namespace ditserve::models::hunyuan_video {
namespace {

constexpr uint64_t kScriptOomSeed = 1001, kEagerOomSeed = 1002, kOtherErrorSeed = 1003;

runtime::PipelineOptions Options() {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/hunyuan-video-tiny");
  if (!info.ok()) throw std::runtime_error(info.status().ToString());
  runtime::PipelineOptions opts;
  opts.info = *info;
  return opts;
}

GenerateParams Small(uint64_t seed) {
  GenerateParams p;
  p.prompt = "a paper boat on a pond";
  p.width = 32;
  p.height = 32;
  p.num_frames = 5;
  p.steps = 2;
  p.guidance_scale = 6.f;
  p.seed = seed;
  return p;
}

TEST(HunyuanVideoMemory, RefusedUpFrontAboveTheLimit) {
  runtime::PipelineOptions opts = Options();
  const GenerateParams p = Small(7);
  uint64_t need = 0;
  {
    auto probe = models::CreatePipeline(opts);
    ASSERT_TRUE(probe.ok()) << probe.status().ToString();
    need = (*probe)->model().RequestDeviceBytes(p);
  }
  ASSERT_GT(need, 1u << 20) << "the estimate should count the activations";

  opts.device_memory_limit = need - 1;
  auto pipeline = models::CreatePipeline(opts);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  testing::RecordingJobControl control;
  auto out = (*pipeline)->GenerateRaw(p, control);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted) << out.status().ToString();
  EXPECT_NE(out.status().message().find("5 frames of 32x32"), std::string::npos) << out.status().message();
  EXPECT_NE(out.status().message().find("MiB of device memory"), std::string::npos) << out.status().message();
  EXPECT_NE(out.status().message().find("(the device memory limit)"), std::string::npos) << out.status().message();
  EXPECT_TRUE(control.events.empty()) << "refused after a stage ran";

  opts.device_memory_limit = need;
  auto fits = models::CreatePipeline(opts);
  ASSERT_TRUE(fits.ok()) << fits.status().ToString();
  auto ok = (*fits)->GenerateRaw(p, control);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->frames, 5);
}

// The real request, failing at its decode as the seed says.
class FailingRequest final : public runtime::FamilyRequest {
 public:
  FailingRequest(std::unique_ptr<runtime::FamilyRequest> inner, uint64_t seed)
      : inner_(std::move(inner)), seed_(seed) {}
  void EncodeText() override { inner_->EncodeText(); }
  StatusOr<runtime::Denoising> PrepareDenoising() override { return inner_->PrepareDenoising(); }
  at::Tensor Decode(const at::Tensor& latents, runtime::Communicator* split) override {
    if (seed_ == kScriptOomSeed) {
      // 8 PiB: no allocator grants it, and it fails inside the interpreter as an exported decoder's would.
      auto cu = torch::jit::compile("def grow(n: int):\n    return torch.empty([n, n, n])\n");
      cu->run_method("grow", int64_t{1} << 17);
    }
    TORCH_CHECK_WITH(OutOfMemoryError, seed_ != kEagerOomSeed,
                     "CUDA out of memory. Tried to allocate 20.00 GiB (injected by the test)");
    if (seed_ == kOtherErrorSeed) throw std::runtime_error("injected failure that is not about memory");
    return inner_->Decode(latents, split);
  }
  void Record(std::map<std::string, runtime::HostTensor>& out) const override { inner_->Record(out); }

 private:
  std::unique_ptr<runtime::FamilyRequest> inner_;
  uint64_t seed_;
};

class FailingModel final : public runtime::FamilyModel {
 public:
  explicit FailingModel(std::unique_ptr<runtime::FamilyModel> inner) : inner_(std::move(inner)) {}
  bool SplitsDecode() const override { return inner_->SplitsDecode(); }
  uint64_t RequestDeviceBytes(const GenerateParams& p) const override { return inner_->RequestDeviceBytes(p); }
  StatusOr<std::unique_ptr<runtime::FamilyRequest>> Begin(const GenerateParams& p,
                                                          const runtime::CfgPlan& plan) override {
    ASSIGN_OR_RETURN(std::unique_ptr<runtime::FamilyRequest> r, inner_->Begin(p, plan));
    return std::unique_ptr<runtime::FamilyRequest>(new FailingRequest(std::move(r), p.seed));
  }

 private:
  std::unique_ptr<runtime::FamilyModel> inner_;
};

TEST(HunyuanVideoMemory, OutOfMemoryFailsThatRequestOnly) {
  const runtime::PipelineOptions opts = Options();
  std::vector<uint8_t> want;
  {
    auto fresh = models::CreatePipeline(opts);
    ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
    testing::RecordingJobControl control;
    auto out = (*fresh)->GenerateRaw(Small(7), control);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    want = out->rgb;
  }
  ASSERT_FALSE(want.empty());

  auto model = LoadHunyuanVideo(opts);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  runtime::DiffusionPipeline pipeline(opts, std::make_unique<FailingModel>(std::move(model).value()));
  struct Failure {
    uint64_t seed;
    StatusCode code;
    const char* says;
  };
  for (const Failure& f : {Failure{kScriptOomSeed, StatusCode::kResourceExhausted, "out of device memory"},
                           Failure{kEagerOomSeed, StatusCode::kResourceExhausted, "out of device memory"},
                           Failure{kOtherErrorSeed, StatusCode::kInternal, "not about memory"}}) {
    testing::RecordingJobControl control;
    auto failed = pipeline.GenerateRaw(Small(f.seed), control);
    ASSERT_FALSE(failed.ok()) << "seed " << f.seed;
    EXPECT_EQ(failed.status().code(), f.code) << failed.status().ToString();
    EXPECT_NE(failed.status().message().find(f.says), std::string::npos) << failed.status().message();
    EXPECT_NE(failed.status().message().find("hunyuan_video"), std::string::npos) << failed.status().message();

    auto next = pipeline.GenerateRaw(Small(7), control);
    ASSERT_TRUE(next.ok()) << "after seed " << f.seed << ": " << next.status().ToString();
    EXPECT_EQ(next->frames, 5);
    EXPECT_TRUE(next->rgb == want) << "the request after a failed one differs from a fresh pipeline's";
  }
}

}  // namespace
}  // namespace ditserve::models::hunyuan_video
