// The pipeline every model family runs: text -> denoise -> decode -> encode, with the family's parts plugged
// in (family.h). It owns what must not differ between families: the CFG plan, the denoise loop and its
// cross-rank agreements, stage timing and peak memory, which ranks decode and return data, output encoding
// (PNG or MP4 by the request's output_format) and the exception boundary.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ditserve/engine.h"
#include "ditserve/status.h"
#include "engine/runtime/family.h"
#include "engine/runtime/pipeline.h"

namespace ditserve::runtime {

class CudaGraphCache;

struct RawOptions {
  // Copies the intermediates and every step's latents to the host: costs a device sync per step, so the
  // serving path (Generate) leaves it off.
  bool record_intermediates = false;
};

// One request without the output encoding.
struct RawOutput {
  int64_t width = 0, height = 0, frames = 0;
  std::vector<uint8_t> rgb;  // frames x height x width x 3 (leader, or every rank of a split decode)
  std::vector<StageTime> timings;  // text_encode, denoise, decode
  int64_t steps_computed = 0, steps_skipped = 0;
  std::vector<bool> cache_decisions;  // per step, true = skipped (empty with the cache off)
  // Only with record_intermediates:
  HostTensor latents;                    // after the last step
  std::vector<HostTensor> step_latents;  // after each step
  std::map<std::string, HostTensor> intermediates;  // the family's (FamilyRequest::Record)
};

class DiffusionPipeline final : public Pipeline {
 public:
  DiffusionPipeline(PipelineOptions options, std::unique_ptr<FamilyModel> model);
  ~DiffusionPipeline() override;

  StatusOr<GenerateOutput> Generate(const GenerateParams& params, JobControl& control) override;
  // Everything but the output encoding; enables inference mode and converts exceptions itself.
  StatusOr<RawOutput> GenerateRaw(const GenerateParams& params, JobControl& control, const RawOptions& raw = {});

  FamilyModel& model() { return *model_; }

 private:
  StatusOr<RawOutput> Run(const GenerateParams& params, JobControl& control, const RawOptions& raw);

  PipelineOptions options_;
  std::unique_ptr<FamilyModel> model_;
  std::unique_ptr<CudaGraphCache> graphs_;  // CUDA pipelines with cuda_graphs
};

}  // namespace ditserve::runtime
