// CogVideoX 2b / 5b / 1.5-5b text-to-video on the shared pipeline core, step for step like diffusers'
// CogVideoXPipeline (0.34): T5 prompt encoding, latents and their positions (2b's sin-cos, 5b / 1.5's 3-D
// RoPE), the transformer as a Denoiser with CFG (optionally dynamic), and the frame-batched causal VAE decode.
#pragma once

#include <memory>

#include "ditserve/status.h"
#include "engine/runtime/family.h"
#include "engine/runtime/pipeline.h"

namespace ditserve::models::cogvideox {

StatusOr<std::unique_ptr<runtime::FamilyModel>> LoadCogVideoX(const runtime::PipelineOptions& options);

// CogVideoXPipeline's dynamic CFG scale at a step whose timestep is `t` (the timestep value, not the step
// index): 1 + scale * (1 - cos(pi * ((n - t) / n) ** 5)) / 2.
double DynamicGuidanceScale(double scale, double t, int64_t num_inference_steps);

}  // namespace ditserve::models::cogvideox
