// Latents -> pixels: FluxPipeline's unpack / unscale / vae.decode and VaeImageProcessor.postprocess.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>
#include <torch/script.h>

namespace ditserve::torch_engine {
class Communicator;
}

namespace ditserve::models::flux {

// (latents / scaling_factor) + shift_factor on the unpacked [1, C, h, w] latents, then vae_decoder.pt.
// Returns the decoder's image [1, 3, H, W] in [-1, 1].
at::Tensor DecodeLatents(torch::jit::Module& vae, const at::Tensor& packed, int64_t latent_h, int64_t latent_w,
                         double scaling_factor, double shift_factor);

// DecodeLatents with the latent rows split over the ranks of `comm` (model.json "vae.parallel": "rows"):
// each rank decodes about latent_h / size rows and every rank returns the whole image (gathered), equal
// to DecodeLatents up to float summation order. Every rank of `comm` must call it with the same latents.
// Null or single-rank `comm`, or latent_h < size: DecodeLatents on every rank.
at::Tensor DecodeLatentsParallel(torch::jit::Module& vae, const at::Tensor& packed, int64_t latent_h,
                                 int64_t latent_w, double scaling_factor, double shift_factor,
                                 torch_engine::Communicator* comm);

// VaeImageProcessor.postprocess(output_type="pil"): (x * 0.5 + 0.5).clamp(0, 1) in the image dtype,
// .float(), * 255, round half to even, uint8. [1, 3, H, W] -> contiguous CPU uint8 [H, W, 3].
at::Tensor PostprocessImage(const at::Tensor& image);

}  // namespace ditserve::models::flux
