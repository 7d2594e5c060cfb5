// ditctl internals shared by its translation units (server/cli/*.cc).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>

#include "ditserve/v1/ditserve.grpc.pb.h"

namespace ditctl {

namespace v1 = ditserve::v1;

// Exit codes.
inline constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2, kExitInvalidArgument = 3,
                     kExitResourceExhausted = 4, kExitUnavailable = 5, kExitDeadline = 6, kExitCancelled = 130;

// Ctrl-C / SIGTERM: blocks the signals in every thread and starts a watcher thread that cancels the
// RPC registered by ActiveCall (or exits 130 when none is in flight; a second signal exits at once).
// Call before the first gRPC channel is created so gRPC's threads inherit the mask.
void StartSignalWatcher();
bool Interrupted();

class ActiveCall {  // registers ctx for cancellation for the scope's lifetime
 public:
  explicit ActiveCall(grpc::ClientContext* ctx);
  ~ActiveCall();
  ActiveCall(const ActiveCall&) = delete;
  ActiveCall& operator=(const ActiveCall&) = delete;
};

struct Ctl {
  std::string addr;
  std::string api_key;     // sent as "authorization: Bearer KEY" on every call when set
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::DitServe::Stub> stub;
  bool tty = false;        // stderr is a terminal
  bool line_open = false;  // a \r progress line is on screen

  void EndLine();
  // Prints "ditctl: error: CODE: message" and returns rc.
  int Fail(const char* code, const std::string& msg, int rc);
  // Maps a failed RPC to the exit code table (130 when the user cancelled it).
  int Fail(const grpc::Status& st);
};

void SetDeadline(grpc::ClientContext& ctx, double seconds);  // <= 0: none
void PrepareCall(const Ctl& ctl, grpc::ClientContext& ctx, double seconds);  // deadline and API key

// TLS options: --tls alone uses the system's root certificates; --ca-file names the server's CA;
// --cert-file/--key-file present a client certificate (mutual TLS).
struct TlsOpts {
  bool tls = false;
  std::string ca_file, cert_file, key_file, api_key_file;
};
// The channel credentials and ctl.api_key from the options; false with a message on stderr.
bool MakeCredentials(const TlsOpts& o, Ctl& ctl, std::shared_ptr<grpc::ChannelCredentials>* creds);
std::string Fmt(const char* printf_format, double v);
std::string HumanBytes(size_t n);
const char* StageName(v1::Stage s, bool json = false);
const char* FormatName(v1::OutputFormat f);
std::string JsonStr(const std::string& s);

struct GenerateOpts {
  std::string prompt, negative, model, format, out;
  uint32_t width = 0, height = 0, frames = 0, steps = 0, fps = 0;
  bool dynamic_cfg = false;
  float guidance = 0, true_cfg = 0, cache_threshold = 0;
  uint64_t seed = 0;
  bool has_guidance = false, has_true_cfg = false, has_seed = false;
  double timeout = 0;  // seconds; 0 = no deadline
  bool quiet = false, json = false;
};

int Generate(Ctl& ctl, const GenerateOpts& o);
int Models(Ctl& ctl, double timeout);
int ServerStatusCmd(Ctl& ctl, double timeout);
int Health(Ctl& ctl, const std::string& service, double timeout);

}  // namespace ditctl
