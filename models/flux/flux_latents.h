// FLUX latent plumbing, as diffusers' FluxPipeline does it: the latent grid, 2x2 packing and the position
// ids the rotary embedding (runtime/rope.h) is computed from.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace ditserve::models::flux {

// Latent grid of a width x height image: 2 * (size // (vae_scale_factor * 2)).
int64_t LatentSize(int64_t pixels, int64_t vae_scale_factor);

// [B, C, h, w] -> [B, (h/2)(w/2), 4C] and back.
at::Tensor PackLatents(const at::Tensor& latents);
at::Tensor UnpackLatents(const at::Tensor& packed, int64_t h, int64_t w);

// _prepare_latent_image_ids: [(h/2)(w/2), 3] rows (0, row, col), float32.
at::Tensor LatentImageIds(int64_t h, int64_t w);

}  // namespace ditserve::models::flux
