// FLUX.1 [dev] / [schnell] text-to-image on the shared pipeline core, step for step like diffusers'
// FluxPipeline (0.34): prompt encoding (CLIP pooled + T5), packed latents and their rotary embedding, the
// transformer as a Denoiser, and the VAE decode. Everything else is runtime::DiffusionPipeline's.
#pragma once

#include <memory>

#include "ditserve/status.h"
#include "engine/runtime/family.h"
#include "engine/runtime/pipeline.h"

namespace ditserve::models::flux {

StatusOr<std::unique_ptr<runtime::FamilyModel>> LoadFlux(const runtime::PipelineOptions& options);

}  // namespace ditserve::models::flux
