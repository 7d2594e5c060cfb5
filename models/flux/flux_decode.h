// Latents -> pixels: FluxPipeline's unpack / unscale / vae.decode (runtime/frames.h postprocesses).
#pragma once

#include <cstdint>

#include <ATen/ATen.h>
#include <torch/script.h>

namespace ditserve::runtime {
class Communicator;
}

namespace ditserve::models::flux {

// (latents / scaling_factor) + shift_factor on the unpacked [1, C, h, w] latents, then vae_decoder.pt: the
// decoder's image [1, 3, H, W] in [-1, 1]. With a multi-rank `comm` (model.json "vae.parallel": "rows") each
// rank decodes about latent_h / size rows and every rank returns the whole image (gathered), equal to the
// single-rank decode up to float summation order; every rank of `comm` must call it with the same latents.
// Null or single-rank `comm`, or latent_h < size: the whole decode on every rank.
at::Tensor DecodeLatentsParallel(torch::jit::Module& vae, const at::Tensor& packed, int64_t latent_h,
                                 int64_t latent_w, double scaling_factor, double shift_factor,
                                 runtime::Communicator* comm);

}  // namespace ditserve::models::flux
