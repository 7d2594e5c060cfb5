// The model-independent pipeline interface the engine facade drives, and what a pipeline is built from.
// No libtorch types: the registry and the facade stay torch-free at this seam.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ditserve/engine.h"
#include "ditserve/model_info.h"
#include "ditserve/status.h"

namespace ditserve::runtime {

class DeviceMesh;  // engine/runtime/cp/mesh.h

struct PipelineOptions {
  ModelInfo info;
  std::string device = "cpu";  // "cpu" or "cuda:N"
  // The group's cfg x ulysses x ring mesh and process groups; null on a single rank. Its attention
  // backend is already installed.
  std::shared_ptr<DeviceMesh> mesh;
  // First Block Cache (the threshold is per request): steps always computed first, and the longest run
  // of skipped steps (0 = no cap).
  int64_t cache_warmup_steps = 1;
  int64_t cache_max_consecutive_skips = 0;
  // Replay the transformer step from CUDA graphs, collectives included (CUDA; steps without the cache).
  bool cuda_graphs = false;
  int video_crf = 18;  // MP4 quality (x264 CRF)
  bool prompt_in_metadata = true;  // the prompts in the output's metadata (server.prompt_in_metadata)
  // Most device memory a request may use beyond the loaded weights, in bytes, below what the device has
  // free (0 = only the device's free memory). A request whose estimate (FamilyModel::RequestDeviceBytes)
  // exceeds the smaller is refused up front; it also makes that refusal testable on the CPU.
  uint64_t device_memory_limit = 0;
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  // Runs one validated request on this rank: text encoding, denoising, decoding and output encoding.
  // Polls control.Cancelled() at every step boundary (returns kCancelled) and reports progress per stage.
  // Never throws: errors of the model code come back as a Status.
  virtual StatusOr<GenerateOutput> Generate(const GenerateParams& params, JobControl& control) = 0;
};

}  // namespace ditserve::runtime
