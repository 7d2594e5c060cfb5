// Daemon configuration: one JSON schema, validated at start with errors that name the key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ditserve/status.h"

namespace ditserve::server {

struct ModelConfig {
  std::string name;  // name clients use
  std::string path;  // exported model directory (absolute after parsing)
};

// One worker group = one pipeline instance of `model` over `ranks` processes.
struct GroupConfig {
  int id = 0;
  std::string model;
  int ranks = 1;
  std::vector<std::string> devices;  // one per rank: "cpu" or "cuda:N"
  int cfg = 1, ulysses = 1, ring = 1;
  bool fp8_attention = false;        // EngineOptions::fp8_attention
  std::string Layout() const;        // "cfg1xulysses1xring1"
};

// server.result_chunk_bytes: outputs larger than this reach clients as a Result plus ResultChunks
// (server/result_stream.h). The default keeps every message far below gRPC's default 4 MiB receive limit
// while a typical image (< 1 MiB) still arrives in one Result; the maximum leaves room under 4 MiB for the
// Result's other fields.
inline constexpr uint64_t kDefaultResultChunkBytes = uint64_t{1} << 20;
inline constexpr uint64_t kMinResultChunkBytes = 1024;
inline constexpr uint64_t kMaxResultChunkBytes = uint64_t{3} << 20;

// PEM files for the gRPC port. client_ca_file set = mutual TLS (clients must present a certificate the
// CA signed).
struct TlsConfig {
  std::string cert_file, key_file, client_ca_file;
  bool enabled() const { return !cert_file.empty(); }
};

struct ServerConfig {
  std::string grpc_address = "127.0.0.1:50051";
  std::string metrics_address = "127.0.0.1:9090";  // empty disables /metrics
  uint32_t queue_capacity = 16;
  std::string worker_binary;     // empty: ditserve-worker next to the ditserve executable
  std::string runtime_dir;       // worker unix sockets; empty: /tmp/ditserve-<pid>
  double worker_start_timeout_s = 600;
  double drain_timeout_s = 600;
  int worker_threads = 0;        // libtorch intra-op threads per worker; 0 = default
  int store_base_port = 29500;   // TCPStore port of group g = store_base_port + g (multi-rank groups)
  // The IP address multi-rank groups rendezvous and communicate on: rank 0's TCPStore listens on it
  // alone (it has no authentication) and Gloo binds to it. One of this host's addresses: every rank
  // runs here (loopback fits; groups spanning hosts are not supported yet).
  std::string store_host = "127.0.0.1";
  // First Block Cache limits for every group (the threshold is per request): always-computed warm-up
  // steps and the longest run of skipped steps (0 = no cap).
  int cache_warmup_steps = 1;
  int cache_max_consecutive_skips = 0;
  // Workers replay the transformer step from CUDA graphs (CUDA devices). Experimental: off by default
  // until its GPU test (flux_cuda_graph_model_gpu_test) has run on a GPU host.
  bool cuda_graphs = false;
  // x264 constant rate factor of MP4 outputs, 0..51 (lower: better and larger; io::Mp4Options::crf).
  int video_crf = 18;
  // Embed the prompt and negative prompt in outputs' metadata (PNG text chunks, MP4 tags). On by default:
  // an output then records what made it; turn off where outputs travel further than their requester
  // and prompts are sensitive. The other parameters (model, seed, steps, size) are always embedded.
  bool prompt_in_metadata = true;
  // Most device memory (MiB) a request may use beyond the loaded weights, below what the device has free
  // (0 = the device's free memory only): a request whose estimate exceeds it is refused up front with
  // RESOURCE_EXHAUSTED. Leaves headroom for other processes on the card.
  int64_t device_memory_limit_mib = 0;
  uint64_t result_chunk_bytes = kDefaultResultChunkBytes;
  uint32_t debug_step_delay_ms = 0;  // testing aid: workers sleep this long after each denoise step
  std::string log_format = "text";   // stdout log lines of ditserve and its workers: text | json (log_format.h)
  // A group whose start fails this many times in a row (or whose model cannot load on its device) is
  // FAILED: no more retries, requests for a model without another group get UNAVAILABLE.
  int max_start_attempts = 3;
  // Watchdog: a running request whose group sends no progress (stage or step) for this long fails and the
  // group restarts (a frozen or deadlocked worker). 0 = automatic: 10x the longest gap the group has shown
  // between progress events, at least 60 s (300 s before its first completed request).
  double stall_timeout_s = 0;
  // false: exit non-zero at start when every group has FAILED (nothing could ever be served).
  bool keep_running_without_groups = false;
  TlsConfig tls;                  // server.tls: the public gRPC port
  std::string api_keys_file;      // server.auth.api_keys_file (server/api_keys.h); empty: no authentication
  // server.auth.metrics_open: /metrics without a key even when api_keys_file is set (otherwise any key,
  // as the HTTP Basic password, reads it).
  bool metrics_open = false;
  bool reflection = false;        // server.reflection: gRPC server reflection (it also describes internal protos)
  std::vector<ModelConfig> models;
  std::vector<GroupConfig> groups;  // expanded: one entry per group (a "count" in JSON repeats)
};

// HOST:PORT with PORT in 1..65535 (also used for command-line overrides of the addresses).
Status CheckListenAddress(const std::string& key, const std::string& address, bool may_be_empty);

StatusOr<ServerConfig> ParseConfig(const std::string& json_text, const std::string& base_dir);
StatusOr<ServerConfig> LoadConfig(const std::string& path);

}  // namespace ditserve::server
