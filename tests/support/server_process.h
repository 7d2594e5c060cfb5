// Starts the real `ditserve` binary on a config written for the test, with free ports, and stops it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "ditserve/v1/ditserve.grpc.pb.h"

namespace ditserve::testing {

struct ServerOptions {
  std::string model_name = "flux-tiny-dev";
  std::string model_dir;          // default: TestModelsDir()/flux-tiny-dev
  int groups = 2;
  // When set: the config's "models" and "groups" arrays verbatim (JSON), instead of `groups` one-rank
  // CPU groups of model_name.
  std::string models_json, groups_json;
  int queue_capacity = 8;
  int step_delay_ms = 0;
  double drain_timeout_s = 120;
  std::string worker_binary;       // server.worker_binary; empty: the real ditserve-worker
  uint64_t result_chunk_bytes = 0;  // server.result_chunk_bytes; 0: the server's default
  int video_crf = -1;               // server.video_crf; -1: the server's default
  std::string grpc_address;         // server.grpc_address; empty: 127.0.0.1 and a free port
  std::string extra_server_json;    // more "server" settings, e.g. R"("drain_timeout_s": 5)"
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // of channel(); null: plaintext
};

class ServerProcess {
 public:
  explicit ServerProcess(ServerOptions opts);
  ~ServerProcess();  // SIGKILL if still running

  // Waits for grpc.health.v1 SERVING; false (with the log tail in *error) on timeout or exit.
  bool WaitReady(double timeout_s, std::string* error);
  // SIGTERM and wait; returns the exit status (waitpid form), -1 on timeout.
  int Terminate(double timeout_s);
  void Signal(int sig);
  pid_t pid() const { return pid_; }
  bool Running();
  int exit_status() const { return exit_status_; }  // waitpid form once Running() saw it exit, else -1

  // Clients use gRPC's default channel settings (4 MiB receive limit), as any client would.
  std::unique_ptr<v1::DitServe::Stub> NewStub() const;
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  const std::string& grpc_address() const { return grpc_address_; }
  int metrics_port() const { return metrics_port_; }
  // GET /metrics body, empty on failure. password: sent as HTTP Basic authentication (user "metrics");
  // *http_status: the response's status code (0 when there was none).
  std::string ScrapeMetrics(const std::string& password = "", int* http_status = nullptr) const;
  std::string LogTail(size_t bytes = 4000) const;
  const std::string& dir() const { return dir_; }  // config, log; runtime dirs go under dir()/run

 private:
  ServerOptions opts_;
  std::string dir_, log_path_, grpc_address_;
  int metrics_port_ = 0;
  pid_t pid_ = -1;
  int exit_status_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
};

// A unary call with raw request bytes, as a hostile client could send them (also to a server-streaming
// method: an error comes back before any response). *response gets the reply's bytes when OK.
grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request, std::string* response = nullptr, double timeout_s = 10);

// Reads `name{labels} value` from a Prometheus text exposition; `labels` must match exactly the text
// inside the braces (e.g. model="m",status="OK"). Returns -1 when absent.
double MetricValue(const std::string& text, const std::string& name, const std::string& labels);

}  // namespace ditserve::testing
