// Issue 19's defects through the real ditserve coordinator and worker process, with the fake engine
// (tests/support/fake_engine.h) so no model is needed: bounded metrics labels, bounded echoes, malformed
// and invalid-UTF-8 requests, deadline accounting, health by service name, a second server on the same
// port, the private runtime directory, and the second signal during a drain.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/fake_engine.h"
#include "support/server_process.h"
#include "support/test_env.h"

namespace ditserve {
namespace {

namespace fs = std::filesystem;
using testing::MetricValue;
using testing::RawUnaryCall;
using testing::ServerOptions;
using testing::ServerProcess;

constexpr char kModel[] = "fake-video";

ServerOptions FakeOptions(const std::string& model_dir) {
  ServerOptions o;
  o.model_name = kModel;
  o.model_dir = model_dir;
  o.groups = 1;
  o.worker_binary = testing::TestBinDir() + "/fake_worker";
  return o;
}

v1::GenerateRequest SmallImage(uint32_t steps = 1) {
  v1::GenerateRequest r;
  r.set_model(kModel);
  r.set_prompt("waves");
  r.set_width(32);
  r.set_height(32);
  r.set_num_frames(1);
  r.set_num_inference_steps(steps);
  r.set_output_format(v1::OUTPUT_FORMAT_PNG);
  r.set_seed(1);
  return r;
}

grpc::Status RunToEnd(const std::shared_ptr<grpc::Channel>& channel, const v1::GenerateRequest& req,
                      double deadline_s = 60) {
  auto stub = v1::DitServe::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                                          std::chrono::duration<double>(deadline_s)));
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateEvent ev;
  while (reader->Read(&ev)) {
  }
  return reader->Finish();
}

std::string WireWithRawPrompt(const std::string& bytes) {
  std::string wire = SmallImage().SerializeAsString();
  wire += '\x12';  // field 2 (prompt), length-delimited; the later value wins
  wire += static_cast<char>(bytes.size());
  return wire + bytes;
}

int CountOf(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

double WaitMetric(const ServerProcess& s, const std::string& name, const std::string& labels, double at_least) {
  double v = -1;
  for (int i = 0; i < 100 && v < at_least; ++i) {
    v = MetricValue(s.ScrapeMetrics(), name, labels);
    if (v < at_least) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return v;
}

class Hardening : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir("ditserve-fake-model"));
    testing::WriteFakeVideoModel(*dir_, kModel);
    ServerOptions o = FakeOptions(*dir_);
    o.step_delay_ms = 100;
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

  static std::string* dir_;
  static ServerProcess* server_;
  static bool ready_;
};
std::string* Hardening::dir_ = nullptr;
ServerProcess* Hardening::server_ = nullptr;
bool Hardening::ready_ = false;

// Defects 1 and 6. Before: each unknown name became a label (1,000 4 KB names grew /metrics to 81 MB),
// requests without a model counted under model="-", and a 16 KB name came back RESOURCE_EXHAUSTED.
TEST_F(Hardening, UnknownModelsShareOneLabelAndEchoesAreBounded) {
  // Once each first, so that every series exists before the baseline.
  auto unknown = SmallImage();
  unknown.set_model("warm-up");
  ASSERT_EQ(RunToEnd(server_->channel(), unknown).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(RunToEnd(server_->channel(), SmallImage()).ok());
  const size_t before = server_->ScrapeMetrics().size();
  const double invalid_before = MetricValue(server_->ScrapeMetrics(), "ditserve_requests_total",
                                            "model=\"_invalid\",status=\"INVALID_ARGUMENT\"");
  for (int i = 0; i < 200; ++i) {
    auto req = SmallImage();
    req.set_model(std::to_string(i) + std::string(4096, 'n'));
    grpc::Status st = RunToEnd(server_->channel(), req);
    ASSERT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message().substr(0, 200);
    EXPECT_LT(st.error_message().size(), 300u);
  }
  auto huge = SmallImage();
  huge.set_model(std::string(16384, 'h'));
  grpc::Status st = RunToEnd(server_->channel(), huge);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message().substr(0, 200);

  auto unnamed = SmallImage();
  unnamed.clear_model();  // the only model serves it
  ASSERT_TRUE(RunToEnd(server_->channel(), unnamed).ok());

  const std::string text = server_->ScrapeMetrics();
  EXPECT_LT(text.size(), before + 256) << "metrics grew with unknown model names";
  EXPECT_EQ(text.find("nnnnnnnn"), std::string::npos);
  EXPECT_EQ(text.find("model=\"-\""), std::string::npos);
  EXPECT_EQ(MetricValue(text, "ditserve_requests_total", "model=\"_invalid\",status=\"INVALID_ARGUMENT\""),
            invalid_before + 201);
  EXPECT_GE(MetricValue(text, "ditserve_requests_total", "model=\"fake-video\",status=\"OK\""), 1);
}

// Defects 8 and 9. Before: invalid UTF-8 gave INTERNAL with an empty message and an ERROR log line per
// request; undecodable requests were not counted at all.
TEST_F(Hardening, MalformedRequestsAreInvalidArgumentCountedAndLoggedSparingly) {
  const double before = std::max(0.0, MetricValue(server_->ScrapeMetrics(), "ditserve_requests_total",
                                                  "model=\"_invalid\",status=\"INVALID_ARGUMENT\""));
  for (int i = 0; i < 50; ++i) {
    grpc::Status st = RawUnaryCall(server_->channel(), "/ditserve.v1.DitServe/Generate", WireWithRawPrompt("bad \xff\xfe"));
    ASSERT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("prompt: not valid UTF-8"), std::string::npos) << st.error_message();
  }
  grpc::Status st = RawUnaryCall(server_->channel(), "/ditserve.v1.DitServe/Generate", std::string("\xff\xff\xff", 3));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("not a valid ditserve.v1.GenerateRequest"), std::string::npos);
  EXPECT_EQ(MetricValue(server_->ScrapeMetrics(), "ditserve_requests_total",
                        "model=\"_invalid\",status=\"INVALID_ARGUMENT\""),
            before + 51);
  const std::string log = server_->LogTail(1 << 20);
  EXPECT_LE(CountOf(log, "rejected a Generate request"), 2) << "one line per 10 s at most";
  EXPECT_EQ(log.find("invalid UTF-8 data"), std::string::npos) << "protobuf's per-request ERROR line";
}

// Defect 8. Before: a deadline that passed while the job ran was counted as CANCELLED: with progress
// events coming faster than the handler's 100 ms poll, the failed write was taken for a disconnect.
TEST_F(Hardening, DeadlineExpiriesAreCountedAsSuch) {
  ServerOptions o = FakeOptions(*dir_);
  o.step_delay_ms = 5;
  ServerProcess s(o);
  std::string err;
  ASSERT_TRUE(s.WaitReady(60, &err)) << err;
  for (int i = 0; i < 3; ++i) {
    grpc::Status st = RunToEnd(s.channel(), SmallImage(/*steps=*/50), /*deadline_s=*/0.15);  // ~0.25 s of steps
    EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  const std::string labels = "model=\"fake-video\",status=\"DEADLINE_EXCEEDED\"";
  EXPECT_EQ(WaitMetric(s, "ditserve_requests_total", labels, 3), 3);
  EXPECT_LT(MetricValue(s.ScrapeMetrics(), "ditserve_requests_total", "model=\"fake-video\",status=\"CANCELLED\""), 0)
      << "no request counted as CANCELLED";
}

TEST_F(Hardening, HealthAnswersByServiceName) {
  auto check = [&](const std::string& service, std::string* resp) {
    std::string req;
    if (!service.empty()) req = std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
    return RawUnaryCall(server_->channel(), "/grpc.health.v1.Health/Check", req, resp);
  };
  std::string resp;
  ASSERT_TRUE(check("ditserve.v1.DitServe", &resp).ok());
  EXPECT_EQ(resp, std::string("\x08\x01", 2));  // SERVING
  resp.clear();
  ASSERT_TRUE(check("", &resp).ok());
  EXPECT_EQ(resp, std::string("\x08\x01", 2));
  EXPECT_EQ(check("no.such.Service", nullptr).error_code(), grpc::StatusCode::NOT_FOUND);
}

// Defect 3. Before: SO_REUSEPORT let the second server start and take half of the connections.
TEST_F(Hardening, SecondServerOnTheSamePortIsRefused) {
  ServerOptions o = FakeOptions(*dir_);
  o.grpc_address = server_->grpc_address();
  ServerProcess second(o);
  for (int i = 0; i < 600 && second.Running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_FALSE(second.Running()) << second.LogTail();
  EXPECT_NE(second.exit_status(), 0);
  EXPECT_NE(second.LogTail().find("cannot listen on " + server_->grpc_address()), std::string::npos)
      << second.LogTail();
  EXPECT_TRUE(RunToEnd(server_->channel(), SmallImage()).ok());  // the first one still serves
}

// Defects 12 and 13. Before: /tmp/ditserve-<pid> (predictable, never removed); a second SIGTERM during a
// drain was ignored and the drain waited up to 600 s.
TEST_F(Hardening, PrivateRuntimeDirAndSecondSignalStopsTheDrain) {
  ServerOptions o = FakeOptions(*dir_);
  o.step_delay_ms = 200;
  ServerProcess s(o);
  std::string err;
  ASSERT_TRUE(s.WaitReady(60, &err)) << err;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(s.dir() + "/run")) dirs.push_back(e.path());
  ASSERT_EQ(dirs.size(), 1u);
  EXPECT_EQ(dirs[0].filename().string().rfind("ditserve-", 0), 0u);
  struct stat st;
  ASSERT_EQ(stat(dirs[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  grpc::Status long_status;
  std::thread client([&] { long_status = RunToEnd(s.channel(), SmallImage(/*steps=*/50)); });  // ~10 s
  ASSERT_GE(WaitMetric(s, "ditserve_group_inflight_requests", "group=\"0\",model=\"fake-video\"", 1), 1);
  s.Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(s.Running()) << "the first signal drains";
  const auto t0 = std::chrono::steady_clock::now();
  s.Signal(SIGTERM);
  while (s.Running() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(8)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int exit_status = s.Running() ? -1 : s.exit_status();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  client.join();
  ASSERT_NE(exit_status, -1) << "still running 8 s after the second signal\n" << s.LogTail();
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) << exit_status;
  EXPECT_LT(took, 6.0);
  EXPECT_EQ(long_status.error_code(), grpc::StatusCode::UNAVAILABLE) << long_status.error_message();
  EXPECT_FALSE(fs::exists(dirs[0])) << "runtime dir left behind";
}

// Defect 4. Before: a model that cannot load was retried forever while requests for it queued up.
TEST_F(Hardening, ModelThatCannotLoadFailsItsGroupAndAnswersUnavailable) {
  const std::string broken = testing::MakeTempDir("ditserve-broken-model");
  testing::WriteFakeVideoModel(broken, "fake-broken");
  std::ofstream(broken + "/fake_load_error") << "transformer.pt: truncated file";
  ServerOptions o = FakeOptions(*dir_);
  o.models_json = R"([{"name": "fake-video", "path": ")" + *dir_ + R"("}, {"name": "fake-broken", "path": ")" +
                  broken + R"("}])";
  o.groups_json = R"([{"model": "fake-video", "devices": "cpu"}, {"model": "fake-broken", "devices": "cpu"}])";
  ServerProcess s(o);
  std::string err;
  ASSERT_TRUE(s.WaitReady(60, &err)) << err;  // the good model serves; the broken one does not hold it up

  auto req = SmallImage();
  req.set_model("fake-broken");
  grpc::Status st = RunToEnd(s.channel(), req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("transformer.pt: truncated file"), std::string::npos) << st.error_message();
  EXPECT_TRUE(RunToEnd(s.channel(), SmallImage()).ok());

  auto stub = s.NewStub();
  grpc::ClientContext ctx;
  v1::ServerStatus status;
  ASSERT_TRUE(stub->GetServerStatus(&ctx, v1::GetServerStatusRequest(), &status).ok());
  ASSERT_EQ(status.groups_size(), 2);
  EXPECT_EQ(status.groups(1).state(), v1::GROUP_STATE_FAILED);
  EXPECT_NE(status.groups(1).failure().find("exited with code 3"), std::string::npos) << status.groups(1).failure();
  EXPECT_EQ(status.groups(1).restarts(), 0u);
  EXPECT_EQ(MetricValue(s.ScrapeMetrics(), "ditserve_group_failed", "group=\"1\",model=\"fake-broken\""), 1);
  EXPECT_EQ(MetricValue(s.ScrapeMetrics(), "ditserve_group_failed", "group=\"0\",model=\"fake-video\""), 0);
}

// Operators see which groups run FP8 attention (groups[].fp8_attention) in the status, as ditctl status shows it.
TEST_F(Hardening, StatusNamesTheGroupsThatRunFp8Attention) {
  ServerOptions o = FakeOptions(*dir_);
  o.groups_json = R"([{"model": "fake-video", "devices": "cpu"},
                      {"model": "fake-video", "devices": "cpu", "fp8_attention": true}])";
  ServerProcess s(o);
  std::string err;
  ASSERT_TRUE(s.WaitReady(60, &err)) << err;
  auto stub = s.NewStub();
  grpc::ClientContext ctx;
  v1::ServerStatus status;
  ASSERT_TRUE(stub->GetServerStatus(&ctx, v1::GetServerStatusRequest(), &status).ok());
  ASSERT_EQ(status.groups_size(), 2);
  EXPECT_FALSE(status.groups(0).fp8_attention());
  EXPECT_TRUE(status.groups(1).fp8_attention());
  EXPECT_NE(s.LogTail().find("(cfg1xulysses1xring1, FP8 attention)"), std::string::npos) << s.LogTail();
}

// Defect 4: a worker that exits at every start (here /bin/false) fails its group after
// server.max_start_attempts; with no group left the server exits non-zero, unless told to keep running.
TEST_F(Hardening, NoGroupCanStartExitsNonZeroOrAnswersUnavailable) {
  ServerOptions o = FakeOptions(*dir_);
  o.worker_binary = "/bin/false";
  o.extra_server_json = R"("max_start_attempts": 2)";
  {
    ServerProcess s(o);
    for (int i = 0; i < 300 && s.Running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_FALSE(s.Running()) << s.LogTail();
    EXPECT_TRUE(WIFEXITED(s.exit_status()) && WEXITSTATUS(s.exit_status()) == 3) << s.exit_status();
    EXPECT_NE(s.LogTail().find("every worker group FAILED"), std::string::npos) << s.LogTail();
  }
  o.extra_server_json = R"("max_start_attempts": 2, "keep_running_without_groups": true)";
  ServerProcess s(o);
  grpc::Status st;
  for (int i = 0; i < 100; ++i) {
    st = RunToEnd(s.channel(), SmallImage());
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE &&
        st.error_message().find("failed to start") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("2 failed starts in a row; last: worker rank 0"), std::string::npos)
      << st.error_message();
  EXPECT_TRUE(s.Running());
}

// Defect 10. Before: a SIGSTOPped worker left the request hanging forever and the group IDLE.
TEST_F(Hardening, WatchdogFailsAStalledRequestAndRestartsTheGroup) {
  ServerOptions o = FakeOptions(*dir_);
  o.step_delay_ms = 100;
  o.extra_server_json = R"("stall_timeout_s": 1.5)";
  ServerProcess s(o);
  std::string err;
  ASSERT_TRUE(s.WaitReady(60, &err)) << err;
  auto stub = s.NewStub();
  auto group = [&] {
    grpc::ClientContext ctx;
    v1::ServerStatus status;
    EXPECT_TRUE(stub->GetServerStatus(&ctx, v1::GetServerStatusRequest(), &status).ok());
    return status.groups(0);
  };
  grpc::Status st;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread client([&] { st = RunToEnd(s.channel(), SmallImage(/*steps=*/50)); });
  v1::GroupStatus g = group();
  for (int i = 0; i < 200 && g.state() != v1::GROUP_STATE_BUSY; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    g = group();
  }
  ASSERT_EQ(g.state(), v1::GROUP_STATE_BUSY);
  ASSERT_EQ(g.pids_size(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few steps in
  kill(static_cast<pid_t>(g.pids(0)), SIGSTOP);
  client.join();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 4.5);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("made no progress"), std::string::npos) << st.error_message();
  for (int i = 0; i < 300 && group().state() != v1::GROUP_STATE_IDLE; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  g = group();
  EXPECT_EQ(g.state(), v1::GROUP_STATE_IDLE);
  EXPECT_EQ(g.restarts(), 1u);
  EXPECT_TRUE(RunToEnd(s.channel(), SmallImage()).ok());
}

}  // namespace
}  // namespace ditserve
