// Context parallelism end to end: the tiny FLUX served by groups laid out as 1 rank, ulysses2, ring2,
// ulysses2xring2, cfg2 and cfg2xulysses2 (CPU, Gloo, one worker process per rank) gives the same image
// as the 1-rank group, at a size whose token count divides by the sequence ranks and one that does not.
//
// Tolerance: fp32 everywhere; sequence-parallel attention only reorders float sums (~1e-7 relative), so
// pixels may differ by at most 1 (uint8 rounding) and in at most 0.5% of the values.
#include <gtest/gtest.h>

#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <thread>
#include <string>
#include <vector>

#include "support/server_process.h"
#include "support/test_env.h"

namespace ditserve {
namespace {

struct Layout {
  const char* model;  // one model name per group, so a request can target a layout
  int ranks, cfg, ulysses, ring;
};
const std::vector<Layout> kLayouts = {{"l1", 1, 1, 1, 1},     {"u2", 2, 1, 2, 1},   {"r2", 2, 1, 1, 2},
                                      {"u2r2", 4, 1, 2, 2},   {"cfg2", 2, 2, 1, 1}, {"cfg2u2", 4, 2, 2, 1}};

struct Image {
  int w = 0, h = 0;
  std::vector<uint8_t> rgb;
};

class ContextParallelServing : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = testing::TestModelsDir() + "/flux-tiny-dev";
    std::string models = "[", groups = "[";
    for (const Layout& l : kLayouts) {
      if (models.size() > 1) models += ", ", groups += ", ";
      models += std::string("{\"name\": \"") + l.model + "\", \"path\": \"" + path + "\"}";
      groups += std::string("{\"model\": \"") + l.model + "\", \"ranks\": " + std::to_string(l.ranks) +
                ", \"devices\": \"cpu\", \"layout\": {\"cfg\": " + std::to_string(l.cfg) +
                ", \"ulysses\": " + std::to_string(l.ulysses) + ", \"ring\": " + std::to_string(l.ring) + "}}";
    }
    testing::ServerOptions opts;
    opts.models_json = models + "]";
    opts.groups_json = groups + "]";
    server_ = new testing::ServerProcess(opts);
    std::string err;
    ready_ = server_->WaitReady(600, &err);
    if (!ready_) ready_error_ = new std::string(err);
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) EXPECT_EQ(server_->Terminate(120), 0);
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(ready_) << (ready_error_ ? *ready_error_ : ""); }

  static v1::GenerateRequest Request(const std::string& model, int w, int h, bool true_cfg) {
    v1::GenerateRequest req;
    req.set_model(model);
    req.set_prompt("a lighthouse on a cliff at dusk");
    req.set_width(w);
    req.set_height(h);
    req.set_num_inference_steps(3);
    req.set_guidance_scale(3.5f);
    req.set_seed(77);
    if (true_cfg) {
      req.set_negative_prompt("fog");
      req.set_true_cfg_scale(2.5f);
    }
    return req;
  }

  static grpc::Status Generate(const v1::GenerateRequest& req, Image* img, double deadline_s = 600,
                               v1::Result* result = nullptr) {
    auto stub = server_->NewStub();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(int64_t(deadline_s * 1000)));
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateEvent ev;
    std::string png;
    while (reader->Read(&ev)) {
      EXPECT_FALSE(ev.has_result_chunk()) << "small images arrive in one Result";
      if (ev.has_result()) {
        png = ev.result().data();
        EXPECT_EQ(ev.result().data_size(), png.size());
        if (result != nullptr) *result = ev.result();
      }
    }
    grpc::Status st = reader->Finish();
    if (st.ok() && img != nullptr) {
      int c = 0;
      uint8_t* px = stbi_load_from_memory(reinterpret_cast<const uint8_t*>(png.data()), static_cast<int>(png.size()),
                                          &img->w, &img->h, &c, 3);
      if (px == nullptr) return grpc::Status(grpc::StatusCode::DATA_LOSS, "result is not a PNG");
      img->rgb.assign(px, px + static_cast<size_t>(img->w) * img->h * 3);
      stbi_image_free(px);
    }
    return st;
  }

  // Same size, every value within 1, at most 0.5% of the values different.
  static void ExpectSameImage(const Image& ref, const Image& got, const std::string& what) {
    ASSERT_EQ(ref.w, got.w) << what;
    ASSERT_EQ(ref.h, got.h) << what;
    ASSERT_EQ(ref.rgb.size(), got.rgb.size()) << what;
    int max_diff = 0;
    size_t differing = 0;
    for (size_t i = 0; i < ref.rgb.size(); ++i) {
      const int d = std::abs(int(ref.rgb[i]) - int(got.rgb[i]));
      max_diff = std::max(max_diff, d);
      differing += d != 0;
    }
    std::printf("%-28s %dx%d: %zu of %zu values differ, max |diff| %d\n", what.c_str(), got.w, got.h, differing,
                ref.rgb.size(), max_diff);
    EXPECT_LE(max_diff, 1) << what;
    EXPECT_LE(differing, ref.rgb.size() / 200) << what;
  }

  static testing::ServerProcess* server_;
  static bool ready_;
  static std::string* ready_error_;
};

testing::ServerProcess* ContextParallelServing::server_ = nullptr;
bool ContextParallelServing::ready_ = false;
std::string* ContextParallelServing::ready_error_ = nullptr;

// 36x44 -> 9x11 = 99 image tokens (padded for 2 and 4 ranks); 64x48 -> 16x12 = 192 (even). 512 text tokens.
const std::vector<std::pair<int, int>> kSizes = {{36, 44}, {64, 48}};

TEST_F(ContextParallelServing, SequenceParallelLayoutsMatchOneRank) {
  for (auto [w, h] : kSizes) {
    Image ref;
    ASSERT_TRUE(Generate(Request("l1", w, h, false), &ref).ok());
    for (const char* model : {"u2", "r2", "u2r2"}) {
      Image got;
      grpc::Status st = Generate(Request(model, w, h, false), &got);
      ASSERT_TRUE(st.ok()) << model << ": " << st.error_message();
      ExpectSameImage(ref, got, std::string(model) + " vs 1 rank");
    }
  }
}

TEST_F(ContextParallelServing, CfgParallelLayoutsMatchOneRank) {
  for (auto [w, h] : kSizes) {
    Image ref;
    ASSERT_TRUE(Generate(Request("l1", w, h, true), &ref).ok());
    for (const char* model : {"cfg2", "cfg2u2", "u2r2"}) {
      Image got;
      grpc::Status st = Generate(Request(model, w, h, true), &got);
      ASSERT_TRUE(st.ok()) << model << ": " << st.error_message();
      ExpectSameImage(ref, got, std::string(model) + " (true CFG) vs 1 rank");
    }
  }
}

TEST_F(ContextParallelServing, CfgParallelGroupRejectsRequestWithoutCfg) {
  grpc::Status st = Generate(Request("cfg2", 64, 48, false), nullptr);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("true_cfg_scale"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("negative_prompt"), std::string::npos) << st.error_message();
  // The group is still healthy afterwards.
  Image img;
  EXPECT_TRUE(Generate(Request("cfg2", 64, 48, true), &img).ok());
}

// First Block Cache under context parallelism: the residual change is reduced over the whole group, so
// every layout skips the same steps as one rank and returns the same image (a rank deciding differently
// would deadlock the group or change the image). Threshold 0.3 gives a mixed pattern on the tiny model.
TEST_F(ContextParallelServing, FirstBlockCacheDecidesTheSameOnEveryLayout) {
  for (bool cfg : {false, true}) {
    v1::GenerateRequest req = Request("l1", 64, 64, cfg);
    req.set_num_inference_steps(8);
    req.set_cache_threshold(0.3f);
    Image ref;
    v1::Result ref_result;
    ASSERT_TRUE(Generate(req, &ref, 600, &ref_result).ok());
    const uint32_t skipped = ref_result.cache().steps_skipped();
    EXPECT_GT(skipped, 0u);
    EXPECT_LT(skipped, 7u);
    std::vector<const char*> layouts = {"u2", "r2", "u2r2"};
    if (cfg) layouts = {"cfg2", "cfg2u2", "u2r2"};
    for (const char* model : layouts) {
      req.set_model(model);
      Image got;
      v1::Result result;
      grpc::Status st = Generate(req, &got, 600, &result);
      ASSERT_TRUE(st.ok()) << model << ": " << st.error_message();
      EXPECT_EQ(result.cache().steps_skipped(), skipped) << model;
      EXPECT_EQ(result.cache().steps_computed(), 8u - skipped) << model;
      ExpectSameImage(ref, got, std::string(model) + (cfg ? " (CFG)" : "") + " FBCache vs 1 rank");
    }
  }
}

TEST(ContextParallelConfig, UlyssesThatDoesNotDivideTheHeadsIsRejectedAtStart) {
  testing::ServerOptions opts;
  opts.groups_json = "[{\"model\": \"flux-tiny-dev\", \"ranks\": 4, \"devices\": \"cpu\", "
                     "\"layout\": {\"cfg\": 1, \"ulysses\": 4, \"ring\": 1}}]";
  testing::ServerProcess server(opts);
  std::string err;
  EXPECT_FALSE(server.WaitReady(60, &err));
  EXPECT_NE(err.find("layout.ulysses 4 must divide the model's 2 attention heads"), std::string::npos) << err;
}

v1::GroupStatus GroupOf(const std::string& model, v1::DitServe::Stub& stub) {
  grpc::ClientContext ctx;
  v1::ServerStatus s;
  EXPECT_TRUE(stub.GetServerStatus(&ctx, {}, &s).ok());
  for (const auto& g : s.groups()) {
    if (g.model() == model) return g;
  }
  return {};
}

bool WaitIdle(const std::string& model, v1::DitServe::Stub& stub, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (GroupOf(model, stub).state() == v1::GROUP_STATE_IDLE) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Cancellation reaches the ranks at different steps; they must still leave the loop together (or the
// others would wait in a collective forever). And a dead rank takes only its request down.
TEST_F(ContextParallelServing, MultiRankGroupSurvivesDeadlineAndRankDeath) {
  auto stub = server_->NewStub();
  v1::GenerateRequest slow = Request("u2r2", 256, 256, false);
  slow.set_num_inference_steps(50);

  grpc::Status st = Generate(slow, nullptr, 0.8);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_TRUE(WaitIdle("u2r2", *stub, 30)) << "group stuck after a cancelled request\n" << server_->LogTail();
  Image img;
  EXPECT_TRUE(Generate(Request("u2r2", 64, 48, false), &img).ok());

  auto fut = std::async(std::launch::async, [&] { return Generate(slow, nullptr); });
  v1::GroupStatus g;
  for (int i = 0; i < 200 && g.state() != v1::GROUP_STATE_BUSY; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    g = GroupOf("u2r2", *stub);
  }
  ASSERT_EQ(g.state(), v1::GROUP_STATE_BUSY);
  ASSERT_EQ(g.pids_size(), 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(static_cast<pid_t>(g.pids(2)), SIGKILL);  // a follower
  st = fut.get();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_NE(st.error_message().find("rank 2"), std::string::npos) << st.error_message();
  EXPECT_TRUE(WaitIdle("u2r2", *stub, 120)) << server_->LogTail();
  EXPECT_EQ(GroupOf("u2r2", *stub).restarts(), 1u);
  EXPECT_TRUE(Generate(Request("u2r2", 64, 48, false), &img).ok());
}

}  // namespace
}  // namespace ditserve
