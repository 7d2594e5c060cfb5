// FLUX.1 [dev] / [schnell] text-to-image, step for step like diffusers' FluxPipeline (0.34), driving
// the exported TorchScript modules. Torch-free header (pimpl) so tests can use GenerateRaw directly.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ditserve/engine.h"
#include "ditserve/status.h"
#include "models/pipeline.h"

namespace ditserve::models::flux {

// The uncompressed result of one request: what Generate encodes as PNG, plus the final latents.
struct FluxRawOutput {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;            // height x width x 3, as VaeImageProcessor.postprocess(output_type="pil")
  std::vector<float> packed_latents;   // latents after the last step, [1, N, 4C] row-major, as float32
                                       // (only with FluxRawOptions::record_intermediates)
  std::vector<int64_t> latents_shape;  // {1, N, 4C}
  std::vector<StageTime> timings;      // text_encode, denoise, decode
  int64_t steps_computed = 0;  // steps whose transformer ran in full
  int64_t steps_skipped = 0;   // steps First Block Cache served from its cached residuals
  std::vector<bool> cache_decisions;  // per step, true = skipped (empty with the cache off)

  // Only with FluxRawOptions::record_intermediates (empty otherwise), all float32 row-major.
  std::vector<std::vector<float>> step_latents;  // packed latents after each step, each latents_shape
  std::vector<float> pooled_embeds;              // CLIP pooled output of the prompt, [1, D]
  std::vector<int64_t> pooled_shape;
  std::vector<float> t5_embeds;                  // T5 last hidden state of the prompt, [1, L, d_model]
  std::vector<int64_t> t5_shape;
};

struct FluxRawOptions {
  // Copies the prompt embeddings and every step's latents to the host: costs a device sync per step, so
  // the serving path (Generate) leaves it off.
  bool record_intermediates = false;
};

class FluxPipeline final : public Pipeline {
 public:
  static StatusOr<std::unique_ptr<FluxPipeline>> Load(const PipelineOptions& options);
  ~FluxPipeline() override;

  StatusOr<GenerateOutput> Generate(const GenerateParams& params, JobControl& control) override;

  // Everything but the PNG encoding. Enables inference mode and converts c10::Error itself, so it can
  // be called directly (the diffusers parity tests do).
  StatusOr<FluxRawOutput> GenerateRaw(const GenerateParams& params, JobControl& control,
                                      const FluxRawOptions& raw_options = {});

  struct Impl;

 private:
  explicit FluxPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ditserve::models::flux
