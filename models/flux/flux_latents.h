// FLUX latent plumbing, as diffusers' FluxPipeline does it: noise, 2x2 packing, position ids and the
// rotary embedding (FluxPosEmbed) the exported transformer takes as inputs.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace ditserve::models::flux {

// Latent grid of a width x height image: 2 * (size // (vae_scale_factor * 2)).
int64_t LatentSize(int64_t pixels, int64_t vae_scale_factor);

// randn_tensor((1, C, h, w), generator=torch.Generator("cpu").manual_seed(seed), dtype): drawn on the
// CPU in `dtype`, then moved to `device`.
at::Tensor InitialNoise(uint64_t seed, int64_t channels, int64_t h, int64_t w, at::ScalarType dtype,
                        const at::Device& device);

// [B, C, h, w] -> [B, (h/2)(w/2), 4C] and back.
at::Tensor PackLatents(const at::Tensor& latents);
at::Tensor UnpackLatents(const at::Tensor& packed, int64_t h, int64_t w);

// _prepare_latent_image_ids: [(h/2)(w/2), 3] rows (0, row, col), float32.
at::Tensor LatentImageIds(int64_t h, int64_t w);

// FluxPosEmbed(theta, axes_dims)(ids): ids [S, n_axes] -> (cos, sin) float32 [S, sum(axes_dims)],
// frequencies in float64 from float32 positions, repeat-interleaved pairs. Computed on the CPU.
std::pair<at::Tensor, at::Tensor> RotaryEmbedding(const at::Tensor& ids, const std::vector<int64_t>& axes_dims,
                                                  double theta);

}  // namespace ditserve::models::flux
