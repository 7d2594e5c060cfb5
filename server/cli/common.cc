// ditctl: signal handling, error reporting and formatting helpers.
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <mutex>
#include <thread>

#include "ctl.h"

namespace ditctl {
namespace {

std::mutex g_mu;
grpc::ClientContext* g_active = nullptr;
std::atomic<bool> g_interrupted{false};

const char* CodeName(grpc::StatusCode c) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                 "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                 "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  int i = static_cast<int>(c);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

}  // namespace

// ---- Ctrl-C -------------------------------------------------------------------------------------------
ActiveCall::ActiveCall(grpc::ClientContext* ctx) {
  std::lock_guard<std::mutex> l(g_mu);
  g_active = ctx;
  if (g_interrupted) ctx->TryCancel();
}

ActiveCall::~ActiveCall() {
  std::lock_guard<std::mutex> l(g_mu);
  g_active = nullptr;
}

bool Interrupted() { return g_interrupted; }

void StartSignalWatcher() {
  static sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (g_interrupted.exchange(true)) std::_Exit(kExitCancelled);  // second Ctrl-C: don't wait
      std::lock_guard<std::mutex> l(g_mu);
      if (g_active != nullptr) {
        g_active->TryCancel();  // the RPC ends with CANCELLED; Ctl::Fail turns that into 130
      } else {
        std::fputs("\nditctl: cancelled\n", stderr);
        std::_Exit(kExitCancelled);
      }
    }
  }).detach();
}

// ---- errors -------------------------------------------------------------------------------------------
void Ctl::EndLine() {
  if (line_open) std::fputs("\n", stderr);
  line_open = false;
}

int Ctl::Fail(const char* code, const std::string& msg, int rc) {
  EndLine();
  std::fprintf(stderr, "ditctl: error: %s: %s\n", code, msg.c_str());
  return rc;
}

int Ctl::Fail(const grpc::Status& st) {
  if (g_interrupted) {
    EndLine();
    std::fputs("ditctl: cancelled\n", stderr);
    return kExitCancelled;
  }
  std::string msg = st.error_message();
  switch (st.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT: return Fail("INVALID_ARGUMENT", msg, kExitInvalidArgument);
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return Fail("RESOURCE_EXHAUSTED", msg, kExitResourceExhausted);
    case grpc::StatusCode::DEADLINE_EXCEEDED: return Fail("DEADLINE_EXCEEDED", msg, kExitDeadline);
    case grpc::StatusCode::UNAVAILABLE:
      // A connected channel means the server itself answered UNAVAILABLE (e.g. while draining).
      if (channel->GetState(false) != GRPC_CHANNEL_READY) {
        msg = "cannot reach ditserve at " + addr + (msg.empty() ? "" : " (" + msg + ")");
      }
      return Fail("UNAVAILABLE", msg, kExitUnavailable);
    default: return Fail(CodeName(st.error_code()), msg, kExitError);
  }
}

void PrepareCall(const Ctl& ctl, grpc::ClientContext& ctx, double seconds) {
  SetDeadline(ctx, seconds);
  if (!ctl.api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + ctl.api_key);
}

namespace {
bool ReadFile(const std::string& path, const char* what, std::string* out) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "ditctl: error: cannot read %s %s\n", what, path.c_str());
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}
}  // namespace

bool MakeCredentials(const TlsOpts& o, Ctl& ctl, std::shared_ptr<grpc::ChannelCredentials>* creds) {
  if (!o.api_key_file.empty()) {
    std::string key;
    if (!ReadFile(o.api_key_file, "--api-key-file", &key)) return false;
    // The first word of the file: a trailing newline or role are not part of the key.
    std::istringstream words(key);
    words >> ctl.api_key;
  }
  if (!o.tls && o.ca_file.empty() && o.cert_file.empty()) {
    *creds = grpc::InsecureChannelCredentials();
    return true;
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.ca_file.empty() && !ReadFile(o.ca_file, "--ca-file", &ssl.pem_root_certs)) return false;
  if (o.cert_file.empty() != o.key_file.empty()) {
    std::fputs("ditctl: error: --cert-file and --key-file go together\n", stderr);
    return false;
  }
  if (!o.cert_file.empty() && (!ReadFile(o.cert_file, "--cert-file", &ssl.pem_cert_chain) ||
                               !ReadFile(o.key_file, "--key-file", &ssl.pem_private_key))) {
    return false;
  }
  *creds = grpc::SslCredentials(ssl);
  return true;
}

void SetDeadline(grpc::ClientContext& ctx, double seconds) {
  if (seconds > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6)));
  }
}

// ---- formatting ---------------------------------------------------------------------------------------
std::string Fmt(const char* printf_format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), printf_format, v);
  return buf;
}

std::string HumanBytes(size_t n) {
  if (n < 1024) return std::to_string(n) + " B";
  if (n < (1u << 20)) return Fmt("%.1f KiB", static_cast<double>(n) / 1024.0);
  return Fmt("%.1f MiB", static_cast<double>(n) / 1048576.0);
}

const char* StageName(v1::Stage s, bool json) {
  switch (s) {
    case v1::STAGE_QUEUED: return "queue";
    case v1::STAGE_TEXT_ENCODE: return json ? "text_encode" : "text encode";
    case v1::STAGE_DENOISE: return "denoise";
    case v1::STAGE_DECODE: return "decode";
    case v1::STAGE_ENCODE: return "encode";
    default: return "other";
  }
}

const char* FormatName(v1::OutputFormat f) {
  return f == v1::OUTPUT_FORMAT_PNG ? "png" : f == v1::OUTPUT_FORMAT_MP4 ? "mp4" : "default";
}

std::string JsonStr(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace ditctl
