// What a model family implements to run on the shared pipeline core (DiffusionPipeline): only what is
// specific to it. A FamilyModel is the loaded model of one rank; Begin turns one request into a
// FamilyRequest whose stages the core calls in order — text, denoising set-up, decode — while the core owns
// the loop, the cross-rank agreements, timing, output encoding and the exception boundary.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditserve/engine.h"
#include "ditserve/status.h"
#include "engine/runtime/cfg_plan.h"
#include "engine/runtime/denoise_loop.h"
#include "engine/runtime/denoiser.h"
#include "engine/runtime/schedulers/scheduler.h"

namespace ditserve::runtime {

class Communicator;

// A float32 host copy of a tensor (parity tests compare them with diffusers).
struct HostTensor {
  std::vector<float> data;
  std::vector<int64_t> shape;
  static HostTensor From(const at::Tensor& t);
};

// What the loop needs from a request, set up at the start of the denoise stage.
struct Denoising {
  at::Tensor latents;                    // the initial noise, in the layout the denoiser reads
  std::unique_ptr<Scheduler> scheduler;  // timesteps set
  std::unique_ptr<Denoiser> denoiser;    // this rank's evaluations, one per CfgPlan branch
  Guidance guidance;
  bool batch_branches = false;  // CFG branches as one batch (as the family's diffusers pipeline does)
};

class FamilyRequest {
 public:
  virtual ~FamilyRequest() = default;
  // Stage text_encode: the prompts of the CFG branches this rank runs.
  virtual void EncodeText() = 0;
  virtual StatusOr<Denoising> PrepareDenoising() = 0;
  // Stage decode: the final latents -> frames [F, 3, H, W], the decoder's output in [-1, 1]. With `split`,
  // every rank of it calls Decode with the same latents and the rows are decoded split over them (model.json
  // "vae.parallel": "rows"); every rank returns the whole video.
  virtual at::Tensor Decode(const at::Tensor& latents, Communicator* split) = 0;
  // Family intermediates for parity tests (text embeddings, masks), only asked with record_intermediates.
  virtual void Record(std::map<std::string, HostTensor>& out) const { (void)out; }
};

class FamilyModel {
 public:
  virtual ~FamilyModel() = default;
  // The decoder may be split by rows over a group's ranks.
  virtual bool SplitsDecode() const = 0;
  // Device memory a request needs on this rank beyond the loaded weights (activations of the largest stage,
  // latents, decode): the core refuses a request up front (RESOURCE_EXHAUSTED naming both figures) when the
  // device has less free. 0 = no estimate (small image models).
  virtual uint64_t RequestDeviceBytes(const GenerateParams& params) const {
    (void)params;
    return 0;
  }
  virtual StatusOr<std::unique_ptr<FamilyRequest>> Begin(const GenerateParams& params, const CfgPlan& plan) = 0;
};

}  // namespace ditserve::runtime
