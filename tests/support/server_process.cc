#include "support/server_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <fcntl.h>

#include <grpcpp/generic/generic_stub.h>

#include "support/test_env.h"

extern char** environ;

namespace ditserve::testing {
namespace {

// grpc.health.v1.HealthCheckRequest{service=""} is an empty message; the response's field 1 (enum
// status) is 1 for SERVING. Hand-encoded to avoid depending on the health proto's generated code.
bool HealthServing(const std::shared_ptr<grpc::Channel>& channel) {
  std::string response;
  return RawUnaryCall(channel, "/grpc.health.v1.Health/Check", "", &response, 0.5).ok() &&
         response == std::string("\x08\x01", 2);
}

// Multi-rank group g's TCPStore listens on store_base_port + g: room for the groups a test configures.
constexpr int kStorePorts = 16;

}  // namespace

ServerProcess::ServerProcess(ServerOptions opts) : opts_(std::move(opts)) {
  if (opts_.model_dir.empty()) opts_.model_dir = TestModelsDir() + "/" + opts_.model_name;
  dir_ = MakeTempDir("ditserve-test");
  log_path_ = dir_ + "/ditserve.log";
  grpc_address_ = opts_.grpc_address.empty() ? "127.0.0.1:" + std::to_string(FreeTcpPort()) : opts_.grpc_address;
  metrics_port_ = FreeTcpPort();
  std::ofstream cfg(dir_ + "/config.json");
  cfg << "{\"server\": {\"grpc_address\": \"" << grpc_address_ << "\", \"metrics_address\": \"127.0.0.1:"
      << metrics_port_ << "\", \"queue_capacity\": " << opts_.queue_capacity
      << ", \"worker_threads\": 1, \"debug_step_delay_ms\": " << opts_.step_delay_ms
      << ", \"drain_timeout_s\": " << opts_.drain_timeout_s << ", \"runtime_dir\": \"" << dir_ << "/run\""
      << ", \"store_base_port\": " << FreePortRange(kStorePorts);
  if (!opts_.worker_binary.empty()) cfg << ", \"worker_binary\": \"" << opts_.worker_binary << "\"";
  if (opts_.result_chunk_bytes > 0) cfg << ", \"result_chunk_bytes\": " << opts_.result_chunk_bytes;
  if (opts_.video_crf >= 0) cfg << ", \"video_crf\": " << opts_.video_crf;
  if (!opts_.extra_server_json.empty()) cfg << ", " << opts_.extra_server_json;
  cfg << "},\n"
      << " \"models\": ";
  if (opts_.models_json.empty()) {
    cfg << "[{\"name\": \"" << opts_.model_name << "\", \"path\": \"" << opts_.model_dir << "\"}]";
  } else {
    cfg << opts_.models_json;
  }
  cfg << ",\n \"groups\": ";
  if (opts_.groups_json.empty()) {
    cfg << "[{\"model\": \"" << opts_.model_name << "\", \"count\": " << opts_.groups
        << ", \"ranks\": 1, \"devices\": \"cpu\"}]";
  } else {
    cfg << opts_.groups_json;
  }
  cfg << "}\n";
  cfg.close();

  std::string bin = BinDir() + "/ditserve";
  std::vector<std::string> args = {bin, "--config", dir_ + "/config.json", "--log-level", "info"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  if (posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&fa);
  channel_ = grpc::CreateChannel(grpc_address_,
                                 opts_.credentials ? opts_.credentials : grpc::InsecureChannelCredentials());
}

ServerProcess::~ServerProcess() {
  if (Running()) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool ServerProcess::Running() {
  if (pid_ <= 0 || exit_status_ != -1) return false;
  int st;
  if (waitpid(pid_, &st, WNOHANG) == pid_) {
    exit_status_ = st;
    return false;
  }
  return true;
}

bool ServerProcess::WaitReady(double timeout_s, std::string* error) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) {
      *error = "ditserve exited during start:\n" + LogTail();
      return false;
    }
    if (HealthServing(channel_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  *error = "ditserve not SERVING after " + std::to_string(timeout_s) + "s:\n" + LogTail();
  return false;
}

void ServerProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

int ServerProcess::Terminate(double timeout_s) {
  Signal(SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) return exit_status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

std::unique_ptr<v1::DitServe::Stub> ServerProcess::NewStub() const { return v1::DitServe::NewStub(channel_); }

namespace {

std::string Base64(const std::string& in) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) v |= static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[v & 63] : '=';
  }
  return out;
}

}  // namespace

std::string ServerProcess::ScrapeMetrics(const std::string& password, int* http_status) const {
  if (http_status != nullptr) *http_status = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(metrics_port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n";
  if (!password.empty()) req += "Authorization: Basic " + Base64("metrics:" + password) + "\r\n";
  req += "\r\n";
  if (write(fd, req.data(), req.size()) < 0) {
    close(fd);
    return "";
  }
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  if (http_status != nullptr && resp.rfind("HTTP/", 0) == 0 && resp.find(' ') != std::string::npos) {
    *http_status = std::atoi(resp.c_str() + resp.find(' ') + 1);
  }
  auto body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

std::string ServerProcess::LogTail(size_t bytes) const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request, std::string* response, double timeout_s) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(timeout_s)));
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1), reply;
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&ctx, method, req, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&reply, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  if (response && status.ok()) {
    std::vector<grpc::Slice> slices;
    (void)reply.Dump(&slices);
    for (auto& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return status;
}

double MetricValue(const std::string& text, const std::string& name, const std::string& labels) {
  std::string key = labels.empty() ? name + " " : name + "{" + labels + "} ";
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size()));
  }
  return -1;
}

}  // namespace ditserve::testing
