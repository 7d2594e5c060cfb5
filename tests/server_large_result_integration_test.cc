// Results far above gRPC's 4 MiB message limit and MP4 outputs through the real servers: the ditserve
// coordinator and the real worker process (RunWorker, Worker service) around tests/support/fake_engine.h,
// since the tiny FLUX models make neither videos nor outputs that large. Clients (the test's stubs and
// ditctl) keep gRPC's default 4 MiB receive limit, as any client would.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "engine/io/png.h"
#include "server/result_stream.h"
#include "server/request_params.h"
#include "support/fake_engine.h"
#include "support/mp4_decode.h"
#include "support/server_process.h"
#include "support/test_env.h"

namespace ditserve {
namespace {

using testing::ServerOptions;
using testing::ServerProcess;

constexpr uint64_t kGrpcDefaultLimit = 4 << 20;
constexpr int kVideoCrf = 23;  // not the default: the fake engine tags its MP4s with the CRF it was given

struct Stream {
  grpc::Status status;
  std::vector<v1::GenerateEvent> events;
  v1::Result result;  // reassembled
};

class LargeResults : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir("ditserve-fake-model"));
    testing::WriteFakeVideoModel(*dir_, "fake-video");
    ServerOptions o;
    o.model_name = "fake-video";
    o.model_dir = *dir_;
    o.groups = 1;
    o.worker_binary = testing::TestBinDir() + "/fake_worker";
    o.video_crf = kVideoCrf;
    server_ = new ServerProcess(o);
    std::string err;
    ready_ = server_->WaitReady(60, &err);
    if (!ready_) std::cerr << err;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  void SetUp() override { ASSERT_TRUE(ready_) << "server did not start"; }

  static v1::GenerateRequest Req(uint32_t w, uint32_t h, v1::OutputFormat format, uint32_t frames, uint32_t fps) {
    v1::GenerateRequest r;
    r.set_model("fake-video");
    r.set_prompt("waves on a beach");
    r.set_width(w);
    r.set_height(h);
    r.set_num_frames(frames);
    r.set_fps(fps);
    r.set_output_format(format);
    r.set_seed(77);
    return r;
  }

  static Stream Run(const v1::GenerateRequest& req) {
    auto stub = server_->NewStub();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto reader = stub->Generate(&ctx, req);
    Stream s;
    server::ResultAssembler assembler;
    v1::GenerateEvent ev;
    while (reader->Read(&ev)) {
      if (ev.has_result()) EXPECT_TRUE(assembler.Add(ev.result()).ok());
      if (ev.has_result_chunk()) EXPECT_TRUE(assembler.Add(ev.result_chunk()).ok());
      s.events.push_back(ev);
    }
    s.status = reader->Finish();
    auto r = assembler.Take();
    if (s.status.ok()) EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (r.ok()) s.result = std::move(*r);
    return s;
  }

  // What the fake engine returns for `req` (after the coordinator's defaults).
  static std::string Expected(const v1::GenerateRequest& req) {
    const GenerateParams p = server::ToParams(req);  // as the worker converts it
    EngineOptions o;
    o.video_crf = kVideoCrf;
    auto out = testing::FakeOutput(p, o);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? std::string(out->data.begin(), out->data.end()) : "";
  }

  static int RunDitctl(const std::string& args, std::string* err) {
    const std::string log = *dir_ + "/ditctl.err";
    const std::string cmd =
        testing::BinDir() + "/ditctl --server " + server_->grpc_address() + " generate -p 'waves' " + args + " 2>" + log;
    const int st = std::system(cmd.c_str());
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    *err = ss.str();
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::string* dir_;
  static ServerProcess* server_;
  static bool ready_;
};
std::string* LargeResults::dir_ = nullptr;
ServerProcess* LargeResults::server_ = nullptr;
bool LargeResults::ready_ = false;

TEST_F(LargeResults, PngAboveFourMiBReachesADefaultClientInChunks) {
  const auto req = Req(2048, 1024, v1::OUTPUT_FORMAT_PNG, 1, 0);
  Stream s = Run(req);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message() << "\n" << server_->LogTail();
  const std::string expected = Expected(req);
  ASSERT_GT(expected.size(), kGrpcDefaultLimit + (1 << 20)) << "the output must exceed one default message";
  EXPECT_EQ(s.result.data_size(), expected.size());
  EXPECT_TRUE(s.result.data() == expected) << "reassembled bytes differ from the engine's output";
  EXPECT_EQ(s.result.width(), 2048u);
  EXPECT_EQ(s.result.fps(), 0u);
  auto png = io::InspectPng(reinterpret_cast<const uint8_t*>(s.result.data().data()), s.result.data().size());
  ASSERT_TRUE(png.ok()) << png.status().ToString();
  EXPECT_EQ(png->width, 2048);
  size_t chunks = 0;
  for (const auto& e : s.events) {
    EXPECT_LT(e.ByteSizeLong(), kGrpcDefaultLimit);
    chunks += e.has_result_chunk();
  }
  const uint64_t chunk = uint64_t{1} << 20;  // the server's default result_chunk_bytes
  EXPECT_EQ(chunks, (expected.size() + chunk - 1) / chunk - 1);
}

TEST_F(LargeResults, Mp4WithFrameRateAndTheServersCrf) {
  const auto req = Req(128, 96, v1::OUTPUT_FORMAT_MP4, 16, 12);
  Stream s = Run(req);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message() << "\n" << server_->LogTail();
  EXPECT_EQ(s.result.mime_type(), "video/mp4");
  EXPECT_EQ(s.result.format(), v1::OUTPUT_FORMAT_MP4);
  EXPECT_EQ(s.result.frames(), 16u);
  EXPECT_EQ(s.result.fps(), 12u);
  EXPECT_EQ(s.result.data_size(), s.result.data().size());
  EXPECT_TRUE(s.result.data() == Expected(req));
  auto v = testing::DecodeMp4(std::vector<uint8_t>(s.result.data().begin(), s.result.data().end()));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->frames, 16);
  EXPECT_EQ(v->width, 128);
  EXPECT_EQ(v->height, 96);
  EXPECT_EQ(v->fps_num, 12 * v->fps_den);
  EXPECT_EQ(v->metadata["crf"], std::to_string(kVideoCrf)) << "server.video_crf did not reach the engine";

  // fps 0: the model's default (24 in the fake's model.json), reported back.
  Stream d = Run(Req(64, 64, v1::OUTPUT_FORMAT_UNSPECIFIED, 4, 0));
  ASSERT_TRUE(d.status.ok()) << d.status.error_message();
  EXPECT_EQ(d.result.mime_type(), "video/mp4");
  EXPECT_EQ(d.result.fps(), 24u);
}

TEST_F(LargeResults, DitctlWritesLargePngsAndMp4s) {
  std::string err;
  const std::string png_path = *dir_ + "/big.png";
  ASSERT_EQ(RunDitctl("--width 2048 --height 1024 --frames 1 --format png --seed 77 -o " + png_path, &err), 0) << err;
  const std::string png = ReadFile(png_path);
  EXPECT_GT(png.size(), kGrpcDefaultLimit);
  EXPECT_TRUE(png == Expected(Req(2048, 1024, v1::OUTPUT_FORMAT_PNG, 1, 0)));
  EXPECT_EQ(err.find("video:"), std::string::npos) << err;

  const std::string mp4_path = *dir_ + "/clip.mp4";
  ASSERT_EQ(RunDitctl("--width 128 --height 96 --frames 16 --fps 12 --format mp4 --seed 77 -o " + mp4_path, &err), 0)
      << err;
  EXPECT_NE(err.find("video: 16 frames, 12 fps, 1.33 s"), std::string::npos) << err;
  const std::string mp4 = ReadFile(mp4_path);
  auto v = testing::DecodeMp4(std::vector<uint8_t>(mp4.begin(), mp4.end()));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->frames, 16);
}

}  // namespace
}  // namespace ditserve
