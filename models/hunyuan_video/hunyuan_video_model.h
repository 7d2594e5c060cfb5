// HunyuanVideo text-to-video on the shared pipeline core, step for step like diffusers' HunyuanVideoPipeline
// (0.34): Llama + CLIP prompt encoding, the latent video and its 3-D rotary embedding, the transformer as a
// Denoiser (embedded guidance, true CFG with a negative prompt), and the causal VAE's tiled decode.
#pragma once

#include <memory>

#include "ditserve/status.h"
#include "engine/runtime/family.h"
#include "engine/runtime/pipeline.h"

namespace ditserve::models::hunyuan_video {

StatusOr<std::unique_ptr<runtime::FamilyModel>> LoadHunyuanVideo(const runtime::PipelineOptions& options);

}  // namespace ditserve::models::hunyuan_video
