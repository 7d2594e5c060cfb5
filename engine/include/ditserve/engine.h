// The narrow engine API: the only engine header server/ includes. No libtorch types cross it, so
// server code compiles without torch headers and the worker's gRPC code never sees them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ditserve/model_info.h"
#include "ditserve/status.h"

namespace ditserve {

// A request after validation and defaulting (coordinator side): every field is concrete.
struct GenerateParams {
  std::string prompt;
  std::string negative_prompt;
  int64_t width = 0;
  int64_t height = 0;
  int64_t num_frames = 1;
  int64_t steps = 0;
  float guidance_scale = 0.f;
  float true_cfg_scale = 1.f;
  uint64_t seed = 0;
  float cache_threshold = 0.f;
  uint32_t fps = 0;
  // CogVideoX's use_dynamic_cfg: the guidance scale rises over the schedule (a cosine of the timestep).
  bool use_dynamic_cfg = false;
  enum class Format { kPng, kMp4 } format = Format::kPng;
};

enum class Stage { kTextEncode, kDenoise, kDecode, kEncode };
const char* StageName(Stage s);

struct StageTime {
  Stage stage;
  double seconds;
  uint64_t peak_device_bytes = 0;  // this rank's peak device allocation in the stage; 0 = not measured (CPU)
};

struct GenerateOutput {
  std::vector<uint8_t> data;  // encoded PNG / MP4
  std::string mime_type;
  int64_t width = 0, height = 0, frames = 1;
  uint64_t seed = 0;
  std::vector<StageTime> timings;
  int64_t steps_computed = 0;
  int64_t steps_skipped = 0;
};

// Callbacks of one running job. Called from the engine's thread.
class JobControl {
 public:
  virtual ~JobControl() = default;
  // Polled at every step boundary; true stops the job with kCancelled.
  virtual bool Cancelled() = 0;
  virtual void Progress(Stage stage, int64_t step, int64_t total) = 0;
};

struct EngineOptions {
  std::string model_dir;
  std::string device = "cpu";  // "cpu" or "cuda:N"
  // Group membership. A group of world_size > 1 rendezvouses through a c10d TCPStore hosted by
  // rank 0 at store_host:store_port, listening on store_host only (an IP address; loopback for a
  // single-host group). Gloo binds to it too.
  int rank = 0;
  int world_size = 1;
  std::string store_host = "127.0.0.1";
  int store_port = 0;
  int cfg = 1, ulysses = 1, ring = 1;  // context-parallel mesh, product == world_size
  int intra_op_threads = 0;            // 0 = libtorch default
  // First Block Cache limits (the threshold comes with each request): always-computed warm-up steps and
  // the longest run of skipped steps (0 = no cap).
  int cache_warmup_steps = 1;
  int cache_max_consecutive_skips = 0;
  // Replay each transformer evaluation from a CUDA graph captured per shape (CUDA devices). Off by
  // default until tests/flux_cuda_graph_model_gpu_test has passed on a GPU host.
  bool cuda_graphs = false;
  // x264 constant rate factor of MP4 outputs (server.video_crf, 0..51; io::Mp4Options::crf says why 18).
  int video_crf = 18;
  // Embed the prompt and negative prompt in PNG text chunks / MP4 tags (server.prompt_in_metadata); the
  // other parameters (model, seed, steps, guidance, size) are always embedded.
  bool prompt_in_metadata = true;
  // Most device memory (bytes) a request may use beyond the weights, below the device's free memory (0 = no
  // such cap; server.device_memory_limit_mib): larger estimates are refused up front (RESOURCE_EXHAUSTED).
  uint64_t device_memory_limit = 0;
  // Attention in FP8 (e4m3 q, k, v and probabilities; a group's fp8_attention): about twice bf16's attention
  // speed on Hopper at a small loss of fidelity (docs/architecture.md, "FP8 attention"). Needs a CUDA
  // device of compute capability 9.x and a build with the cuDNN frontend; the CPU runs its reference (CI).
  bool fp8_attention = false;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Loads the model (TorchScript modules, tokenizers) and joins the group.
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  virtual const ModelInfo& info() const = 0;
  // Runs one request to completion on this rank. Every rank of a group calls it with the same
  // params; only rank 0's output carries data.
  virtual StatusOr<GenerateOutput> Generate(const GenerateParams& params, JobControl& control) = 0;
};

}  // namespace ditserve
