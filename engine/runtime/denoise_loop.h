// The one denoising loop every model family runs. It owns every agreement the ranks of a group must make
// identically, so no family can get one subtly different and deadlock a group:
//   - cancellation, agreed once per step over the group (a rank leaving alone would strand the others in a
//     collective);
//   - classifier-free guidance: branches evaluated one after the other or as one batch on a rank, or split
//     over cfg ranks and exchanged once per step, then combined with the same formula everywhere;
//   - First Block Cache: one skip decision per step from sums all-reduced over the whole group;
//   - CUDA-graph replay of uncached evaluations, with an eager fallback that issues the same collectives;
//   - progress after every step.
// Every rank of a group calls Denoise with the same latents, schedule and options.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/ATen.h>

#include "ditserve/engine.h"
#include "ditserve/status.h"
#include "engine/runtime/cfg_plan.h"
#include "engine/runtime/denoiser.h"
#include "engine/runtime/first_block_cache.h"
#include "engine/runtime/schedulers/scheduler.h"

namespace ditserve::runtime {

class CudaGraphCache;
class DeviceMesh;

struct Guidance {
  // The CFG scale at a step (used when the plan has CFG): prediction = neg + (pos - neg) * scale.
  std::function<double(int64_t step)> scale;
  // Combine the branches and step the scheduler in float32 (Mochi, CogVideoX) instead of the model dtype.
  bool float32 = false;
};

struct DenoiseOptions {
  Guidance guidance;
  FirstBlockCacheOptions cache;
  // Evaluate a rank's two CFG branches as one batch of twice the size (the families whose diffusers pipeline
  // does so) instead of one after the other.
  bool batch_branches = false;
  // Replays uncached evaluations from CUDA graphs (null: eager). Disabled for good if a capture fails.
  CudaGraphCache* graphs = nullptr;
  // Copies the latents to the host after every step (a device sync per step: tests only).
  bool record_steps = false;
};

struct DenoiseResult {
  at::Tensor latents;  // after the last step, the input's dtype and device
  int64_t steps_computed = 0, steps_skipped = 0;
  std::vector<bool> cache_decisions;     // per step, true = skipped (empty with the cache off)
  std::vector<at::Tensor> step_latents;  // float32 CPU copies, with record_steps
};

// True on every rank when any rank's control reports a cancellation (a collective on multi-rank groups).
bool AgreeCancelled(DeviceMesh* mesh, JobControl& control);

// Runs every step of `scheduler` (timesteps set) from `latents`. kCancelled when the group agrees to stop
// at a step boundary.
StatusOr<DenoiseResult> Denoise(Denoiser& denoiser, Scheduler& scheduler, at::Tensor latents, const CfgPlan& plan,
                                DeviceMesh* mesh, JobControl& control, const DenoiseOptions& options);

}  // namespace ditserve::runtime
