// Mochi-1 text-to-video on the shared pipeline core, step for step like diffusers' MochiPipeline (0.34):
// T5 prompt encoding with its mask, the linear-quadratic inverted flow-matching schedule, true CFG in float32,
// the asymmetric joint transformer as a Denoiser (text padding as an attention key mask), and the causal video
// VAE decode. Everything else is runtime::DiffusionPipeline's.
#pragma once

#include <memory>

#include "ditserve/status.h"
#include "engine/runtime/family.h"
#include "engine/runtime/pipeline.h"

namespace ditserve::models::mochi {

StatusOr<std::unique_ptr<runtime::FamilyModel>> LoadMochi(const runtime::PipelineOptions& options);

}  // namespace ditserve::models::mochi
