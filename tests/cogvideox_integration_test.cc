// CogVideoX served end to end: the real ditserve with a 2-rank ring group (CPU, Gloo) of the tiny 5b-style model,
// `ditctl generate --dynamic-cfg` writes an MP4 with every frame at the model's default 8 fps; bad requests get
// INVALID_ARGUMENT naming the field and its allowed values before anything is queued.
#include <sys/wait.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/mp4_decode.h"
#include "support/server_process.h"
#include "support/test_env.h"

namespace ditserve {
namespace {

class CogVideoXServed : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::ServerOptions opts;
    opts.models_json = R"([{"name": "cog", "path": ")" + testing::TestModelsDir() + R"(/cogvideox-tiny-5b"}])";
    opts.groups_json = R"([{"model": "cog", "count": 1, "ranks": 2, "devices": "cpu",
                            "layout": {"cfg": 1, "ulysses": 1, "ring": 2}}])";
    server_ = new testing::ServerProcess(opts);
    ready_ = server_->WaitReady(300, &error_);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(ready_) << error_; }

  static grpc::Status Generate(const v1::GenerateRequest& req) {
    auto stub = server_->NewStub();
    grpc::ClientContext ctx;
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateEvent ev;
    while (reader->Read(&ev)) {
    }
    return reader->Finish();
  }

  static testing::ServerProcess* server_;
  static bool ready_;
  static std::string error_;
};
testing::ServerProcess* CogVideoXServed::server_ = nullptr;
bool CogVideoXServed::ready_ = false;
std::string CogVideoXServed::error_;

TEST_F(CogVideoXServed, DitctlWritesAnMp4WithEveryFrame) {
  const std::string dir = testing::MakeTempDir("cogvideox-served");
  const std::string out = dir + "/clip.mp4";
  const std::string cmd = testing::BinDir() + "/ditctl --server " + server_->grpc_address() +
                          " generate -m cog -p 'a red fox in the snow' -W 48 -H 32 --frames 9 --steps 2 --seed 3 "
                          "--dynamic-cfg -q -o " + out + " 2>" + dir + "/ditctl.err";
  const int st = std::system(cmd.c_str());
  std::ifstream err_in(dir + "/ditctl.err");
  std::stringstream err;
  err << err_in.rdbuf();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << err.str() << server_->LogTail();
  std::ifstream in(out, std::ios::binary);
  const std::vector<uint8_t> mp4((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto video = testing::DecodeMp4(mp4);
  ASSERT_TRUE(video.ok()) << video.status().ToString();
  EXPECT_EQ(video->frames, 9);
  EXPECT_EQ(video->width, 48);
  EXPECT_EQ(video->height, 32);
  EXPECT_EQ(video->fps_num, 8 * video->fps_den);
  EXPECT_EQ(video->metadata["use_dynamic_cfg"], "true");
}

TEST_F(CogVideoXServed, BadRequestsNameTheFieldAndAllowedValues) {
  v1::GenerateRequest req;
  req.set_model("cog");
  req.set_prompt("a fox");
  req.set_width(48);
  req.set_height(32);
  req.set_num_inference_steps(2);
  struct Bad {
    const char* what;
    std::function<void(v1::GenerateRequest&)> set;
    std::string field, allowed;
  };
  const std::vector<Bad> bads = {
      {"frames not 8k+1", [](auto& r) { r.set_num_frames(13); }, "num_frames", "[1, 25], 8k+1"},
      {"too many frames", [](auto& r) { r.set_num_frames(33); }, "num_frames", "[1, 25]"},
      {"width not a multiple of 16", [](auto& r) { r.set_width(40); }, "width", "multiple of 16"},
      {"height too large", [](auto& r) { r.set_height(256); }, "height", "[16, 128]"},
  };
  for (const Bad& b : bads) {
    v1::GenerateRequest r = req;
    b.set(r);
    const grpc::Status st = Generate(r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << b.what;
    EXPECT_NE(st.error_message().find(b.field), std::string::npos) << b.what << ": " << st.error_message();
    EXPECT_NE(st.error_message().find(b.allowed), std::string::npos) << b.what << ": " << st.error_message();
  }
}

}  // namespace
}  // namespace ditserve
