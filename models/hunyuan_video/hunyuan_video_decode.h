// Latents -> video frames: HunyuanVideoPipeline's `vae.decode(latents / scaling_factor)` with
// AutoencoderKLHunyuanVideo._decode's tiling (diffusers 0.34): clips longer than a temporal tile decode as
// overlapping chunks of latent frames blended in time (use_framewise_decoding, diffusers' default), frames
// larger than a spatial tile as overlapping tiles blended in space (enable_tiling(); model.json
// vae.tiling.enabled). vae_decoder.pt decodes one tile; the blends here are diffusers' blend_t/v/h, in place and
// in the same order, so the result equals diffusers' decode with the same settings.
//
// Parallel decode (model.json "vae.parallel": "rows"): every tile's decode is split by latent rows over the
// group's ranks (runtime::RunSplitByRows; the decoder's convs exchange halo rows, its group norms and mid-block
// attention see every rank's rows), never by time, and every rank blends the gathered tiles alike. So the split
// decode equals the single-rank one up to float summation order, with or without tiling, and each rank holds
// about 1/ranks of a tile's activations.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include "models/hunyuan_video/hunyuan_video_config.h"

namespace ditserve::runtime {
class Communicator;
}

namespace ditserve::models::hunyuan_video {

// latents [1, C, f, h, w] -> frames [4(f-1)+1, 3, s*h, s*w] in [-1, 1], the VAE's dtype. With `split`, every
// rank of it calls this with the same latents and decodes its rows of each tile; every rank returns the video.
at::Tensor DecodeVideo(torch::jit::Module& vae, const HunyuanVideoConfig& config, const at::Tensor& latents,
                       runtime::Communicator* split);

}  // namespace ditserve::models::hunyuan_video
