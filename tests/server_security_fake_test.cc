// Issue 19's security features through the real ditserve and worker process (fake engine): TLS and
// mutual TLS on the gRPC port, API keys (UNAUTHENTICATED / PERMISSION_DENIED, roles,
// admin-only status fields, reload on SIGHUP, never logged) and ditctl's flags for all of it. Test
// certificates are made with the openssl command-line tool.
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/fake_engine.h"
#include "support/server_process.h"
#include "support/test_env.h"

namespace ditserve {
namespace {

using testing::ServerOptions;
using testing::ServerProcess;

const char kUserKey[] = "user-key-0123456789abcdef";
const char kReadOnlyKey[] = "readonly-key-0123456789abcdef";
const char kAdminKey[] = "admin-key-0123456789abcdef";
const char kNewUserKey[] = "rotated-user-key-0123456789abcdef";

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int Shell(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

class Security : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir("ditserve-security"));
    const std::string d = *dir_;
    testing::WriteFakeVideoModel(d, "fake-video");
    // A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
    std::ofstream(d + "/san.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    const std::string cmd =
        "cd " + d + " && openssl req -x509" + ec + "-keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca" +
        " && openssl req" + ec + "-keyout server.key -out server.csr -subj /CN=localhost" +
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2"
        " -extfile san.ext" +
        " && openssl req" + ec + "-keyout client.key -out client.csr -subj /CN=client" +
        " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2";
    certs_ok_ = Shell("(" + cmd + ") >" + d + "/openssl.log 2>&1") == 0;
    std::ofstream(d + "/keys") << "# test keys\n"
                               << kUserKey << "\n"
                               << kReadOnlyKey << " readonly\n"
                               << kAdminKey << " admin\n";
    if (!certs_ok_) return;

    server_ = new ServerProcess(SecureOptions(""));
    std::string err;
    ready_ = server_->WaitReady(60, &err);
    if (!ready_) std::cerr << err;
  }
  // Mutual TLS and the keys file; more_auth: further "server.auth" settings (JSON members).
  static ServerOptions SecureOptions(const std::string& more_auth) {
    const std::string d = *dir_;
    ServerOptions o;
    o.model_name = "fake-video";
    o.model_dir = d;
    o.groups = 1;
    o.worker_binary = testing::TestBinDir() + "/fake_worker";
    o.extra_server_json = R"("tls": {"cert_file": ")" + d + R"(/server.pem", "key_file": ")" + d +
                          R"(/server.key", "client_ca_file": ")" + d + R"(/ca.pem"},
        "auth": {"api_keys_file": ")" + d + R"(/keys")" + more_auth + "}";
    o.credentials = MutualTls();
    return o;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  void SetUp() override {
    ASSERT_TRUE(certs_ok_) << "openssl could not make the test certificates:\n" << Slurp(*dir_ + "/openssl.log");
    ASSERT_TRUE(ready_) << "server did not start";
  }

  static std::shared_ptr<grpc::ChannelCredentials> MutualTls() {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = Slurp(*dir_ + "/ca.pem");
    o.pem_cert_chain = Slurp(*dir_ + "/client.pem");
    o.pem_private_key = Slurp(*dir_ + "/client.key");
    return grpc::SslCredentials(o);
  }

  static grpc::Status ListModels(const std::shared_ptr<grpc::Channel>& ch, const std::string& key) {
    auto stub = v1::DitServe::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!key.empty()) ctx.AddMetadata("authorization", "Bearer " + key);
    v1::ListModelsResponse resp;
    return stub->ListModels(&ctx, v1::ListModelsRequest(), &resp);
  }

  static grpc::Status Status(const std::string& key, v1::ServerStatus* out) {
    auto stub = server_->NewStub();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("authorization", "Bearer " + key);
    return stub->GetServerStatus(&ctx, v1::GetServerStatusRequest(), out);
  }

  static grpc::Status Generate(const std::string& key) {
    auto stub = server_->NewStub();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ctx.AddMetadata("authorization", "Bearer " + key);
    v1::GenerateRequest r;
    r.set_prompt("waves");
    r.set_width(32);
    r.set_height(32);
    r.set_num_frames(1);
    r.set_num_inference_steps(1);
    r.set_output_format(v1::OUTPUT_FORMAT_PNG);
    auto reader = stub->Generate(&ctx, r);
    v1::GenerateEvent ev;
    while (reader->Read(&ev)) {
    }
    return reader->Finish();
  }

  static std::string* dir_;
  static ServerProcess* server_;
  static bool certs_ok_, ready_;
};
std::string* Security::dir_ = nullptr;
ServerProcess* Security::server_ = nullptr;
bool Security::certs_ok_ = false;
bool Security::ready_ = false;

TEST_F(Security, TlsIsRequiredAndMutual) {
  auto plain = grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials());
  EXPECT_EQ(ListModels(plain, kUserKey).error_code(), grpc::StatusCode::UNAVAILABLE);
  grpc::SslCredentialsOptions no_client_cert;
  no_client_cert.pem_root_certs = Slurp(*dir_ + "/ca.pem");
  auto tls_only = grpc::CreateChannel(server_->grpc_address(), grpc::SslCredentials(no_client_cert));
  EXPECT_EQ(ListModels(tls_only, kUserKey).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(ListModels(server_->channel(), kUserKey).ok());
}

TEST_F(Security, ApiKeysAndRoles) {
  EXPECT_EQ(ListModels(server_->channel(), "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListModels(server_->channel(), "not-a-key-0123456789").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(ListModels(server_->channel(), kReadOnlyKey).ok());
  grpc::Status denied = Generate(kReadOnlyKey);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED) << denied.error_message();
  EXPECT_EQ(Generate("not-a-key-0123456789").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status ok = Generate(kUserKey);
  EXPECT_TRUE(ok.ok()) << ok.error_message();

  // Worker pids and devices: admins only.
  v1::ServerStatus user_view, admin_view;
  ASSERT_TRUE(Status(kUserKey, &user_view).ok());
  ASSERT_TRUE(Status(kAdminKey, &admin_view).ok());
  ASSERT_EQ(user_view.groups_size(), 1);
  EXPECT_EQ(user_view.groups(0).pids_size(), 0);
  EXPECT_EQ(user_view.groups(0).devices_size(), 0);
  EXPECT_EQ(user_view.groups(0).model(), "fake-video");  // the rest of the status is there (its state may
                                                        // still be BUSY: the group idles after the reply)
  EXPECT_EQ(admin_view.groups(0).pids_size(), 1);
  EXPECT_EQ(admin_view.groups(0).devices_size(), 1);

  const std::string log = server_->LogTail(1 << 20);
  for (const char* key : {kUserKey, kReadOnlyKey, kAdminKey, "not-a-key-0123456789"}) {
    EXPECT_EQ(log.find(key), std::string::npos) << "an API key was logged";
  }
}

// With API keys configured, /metrics needs one (any role) as the HTTP Basic password, unless
// server.auth.metrics_open. Before, /metrics was open whatever the keys.
TEST_F(Security, MetricsNeedAKeyUnlessOpen) {
  int status = 0;
  std::string body = server_->ScrapeMetrics("", &status);
  EXPECT_EQ(status, 401);
  EXPECT_EQ(body.find("ditserve_queue_depth"), std::string::npos);
  body = server_->ScrapeMetrics("not-a-key-0123456789", &status);
  EXPECT_EQ(status, 401);
  EXPECT_EQ(body.find("ditserve_queue_depth"), std::string::npos);
  body = server_->ScrapeMetrics(kReadOnlyKey, &status);
  EXPECT_EQ(status, 200);
  EXPECT_NE(body.find("ditserve_queue_depth"), std::string::npos);
  EXPECT_EQ(server_->LogTail(1 << 20).find(kReadOnlyKey), std::string::npos);

  ServerProcess open(SecureOptions(R"(, "metrics_open": true)"));
  std::string err;
  ASSERT_TRUE(open.WaitReady(60, &err)) << err;
  body = open.ScrapeMetrics("", &status);
  EXPECT_EQ(status, 200);
  EXPECT_NE(body.find("ditserve_queue_depth"), std::string::npos);
}

TEST_F(Security, KeysReloadOnSighupAndABadFileKeepsTheOldOnes) {
  std::ofstream(*dir_ + "/keys") << kNewUserKey << "\n" << kReadOnlyKey << " readonly\n" << kAdminKey << " admin\n";
  server_->Signal(SIGHUP);
  grpc::Status st;
  for (int i = 0; i < 100; ++i) {
    st = ListModels(server_->channel(), kNewUserKey);
    if (st.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(ListModels(server_->channel(), kUserKey).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  std::ofstream(*dir_ + "/keys") << "short\n";  // invalid: the keys in use stay
  server_->Signal(SIGHUP);
  for (int i = 0; i < 100 && server_->LogTail().find("keeping the API keys in use") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(server_->LogTail().find("keeping the API keys in use"), std::string::npos) << server_->LogTail();
  EXPECT_TRUE(ListModels(server_->channel(), kNewUserKey).ok());
  EXPECT_EQ(server_->LogTail(1 << 20).find(kNewUserKey), std::string::npos);
  std::ofstream(*dir_ + "/keys") << kUserKey << "\n" << kReadOnlyKey << " readonly\n" << kAdminKey << " admin\n";
  server_->Signal(SIGHUP);
  for (int i = 0; i < 100 && !ListModels(server_->channel(), kUserKey).ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

TEST_F(Security, DitctlFlags) {
  const std::string d = *dir_;
  std::ofstream(d + "/ditctl.key") << kAdminKey << "\n";
  const std::string base = testing::BinDir() + "/ditctl --server " + server_->grpc_address() + " --ca-file " + d +
                           "/ca.pem --cert-file " + d + "/client.pem --key-file " + d + "/client.key";
  EXPECT_EQ(Shell(base + " --api-key-file " + d + "/ditctl.key status >" + d + "/status.out 2>&1"), 0)
      << Slurp(d + "/status.out");
  EXPECT_NE(Slurp(d + "/status.out").find("cpu"), std::string::npos) << "admins see devices";
  EXPECT_NE(Shell(base + " status >/dev/null 2>&1"), 0) << "no API key";
  EXPECT_NE(Shell(testing::BinDir() + "/ditctl --server " + server_->grpc_address() + " --api-key-file " + d +
                "/ditctl.key status >/dev/null 2>&1"),
            0)
      << "plaintext against a TLS port";

}

}  // namespace
}  // namespace ditserve
