// Latents -> video frames: HunyuanVideoPipeline's `vae.decode(latents / scaling_factor)` with
// AutoencoderKLHunyuanVideo._decode's tiling (diffusers 0.34): clips longer than a temporal tile decode as
// overlapping chunks of latent frames blended in time (use_framewise_decoding, diffusers' default), frames
// larger than a spatial tile as overlapping tiles blended in space (enable_tiling(); model.json
// vae.tiling.enabled). vae_decoder.pt decodes one tile; the blends here are diffusers' blend_t/v/h, in place and
// in the same order, so the result equals diffusers' decode with the same settings.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include "models/hunyuan_video/hunyuan_video_config.h"

namespace ditserve::models::hunyuan_video {

// latents [1, C, f, h, w] -> frames [4(f-1)+1, 3, s*h, s*w] in [-1, 1], the VAE's dtype.
at::Tensor DecodeVideo(torch::jit::Module& vae, const HunyuanVideoConfig& config, const at::Tensor& latents);

}  // namespace ditserve::models::hunyuan_video
