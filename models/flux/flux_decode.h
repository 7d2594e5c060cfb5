// Latents -> pixels: FluxPipeline's unpack / unscale / vae.decode and VaeImageProcessor.postprocess.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>
#include <torch/script.h>

namespace ditserve::models::flux {

// (latents / scaling_factor) + shift_factor on the unpacked [1, C, h, w] latents, then vae_decoder.pt.
// Returns the decoder's image [1, 3, H, W] in [-1, 1].
at::Tensor DecodeLatents(torch::jit::Module& vae, const at::Tensor& packed, int64_t latent_h, int64_t latent_w,
                         double scaling_factor, double shift_factor);

// VaeImageProcessor.postprocess(output_type="pil"): (x * 0.5 + 0.5).clamp(0, 1) in the image dtype,
// .float(), * 255, round half to even, uint8. [1, 3, H, W] -> contiguous CPU uint8 [H, W, 3].
at::Tensor PostprocessImage(const at::Tensor& image);

}  // namespace ditserve::models::flux
