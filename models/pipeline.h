// The model-family-independent pipeline interface the engine drives. No libtorch types: families
// keep their tensors behind this interface, so the registry and engine.cc stay family-agnostic.
#pragma once

#include <memory>
#include <string>

#include "ditserve/engine.h"
#include "ditserve/model_info.h"
#include "ditserve/status.h"

namespace ditserve::torch_engine {
class DeviceMesh;  // engine/src/torch/cp/mesh.h
}

namespace ditserve::models {

// What a pipeline is built from. The engine has validated the model directory (info) and the device.
struct PipelineOptions {
  ModelInfo info;
  std::string device = "cpu";  // "cpu" or "cuda:N"
  // The group's cfg x ulysses x ring mesh and process groups; null on a single rank. Its attention
  // backend is already installed.
  std::shared_ptr<torch_engine::DeviceMesh> mesh;
  // First Block Cache (the threshold is per request): steps always computed first, and the longest run
  // of skipped steps (0 = no cap).
  int64_t cache_warmup_steps = 1;
  int64_t cache_max_consecutive_skips = 0;
  // Replay the transformer step from CUDA graphs, collectives included (CUDA; steps without the cache).
  bool cuda_graphs = false;
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  // Runs one validated request on this rank: text encoding, denoising, decoding and output encoding.
  // Polls control.Cancelled() at every step boundary (returns kCancelled) and reports progress per stage.
  // Called with inference mode enabled by the engine; may throw c10::Error (the engine converts it).
  virtual StatusOr<GenerateOutput> Generate(const GenerateParams& params, JobControl& control) = 0;
};

}  // namespace ditserve::models
