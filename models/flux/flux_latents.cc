#include "models/flux/flux_latents.h"

#include <ATen/CPUGeneratorImpl.h>

namespace ditserve::models::flux {

int64_t LatentSize(int64_t pixels, int64_t vae_scale_factor) { return 2 * (pixels / (vae_scale_factor * 2)); }

at::Tensor InitialNoise(uint64_t seed, int64_t channels, int64_t h, int64_t w, at::ScalarType dtype,
                        const at::Device& device) {
  // torch.Generator("cpu").manual_seed(seed): a fresh mt19937 seeded with `seed`.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor noise = at::randn({1, channels, h, w}, gen, at::TensorOptions().dtype(dtype).device(at::kCPU));
  return noise.to(device);
}

at::Tensor PackLatents(const at::Tensor& latents) {
  const int64_t b = latents.size(0), c = latents.size(1), h = latents.size(2), w = latents.size(3);
  return latents.view({b, c, h / 2, 2, w / 2, 2})
      .permute({0, 2, 4, 1, 3, 5})
      .reshape({b, (h / 2) * (w / 2), c * 4});
}

at::Tensor UnpackLatents(const at::Tensor& packed, int64_t h, int64_t w) {
  const int64_t b = packed.size(0), channels = packed.size(2);
  return packed.view({b, h / 2, w / 2, channels / 4, 2, 2})
      .permute({0, 3, 1, 4, 2, 5})
      .reshape({b, channels / 4, h, w});
}

at::Tensor LatentImageIds(int64_t h, int64_t w) {
  const int64_t hh = h / 2, ww = w / 2;
  at::Tensor ids = at::zeros({hh, ww, 3}, at::kFloat);
  ids.select(2, 1).add_(at::arange(hh, at::kFloat).unsqueeze(1));
  ids.select(2, 2).add_(at::arange(ww, at::kFloat).unsqueeze(0));
  return ids.reshape({hh * ww, 3});
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding(const at::Tensor& ids, const std::vector<int64_t>& axes_dims,
                                                  double theta) {
  TORCH_CHECK(ids.dim() == 2 && ids.size(1) == static_cast<int64_t>(axes_dims.size()),
              "RotaryEmbedding: ids must be [S, ", axes_dims.size(), "], got ", ids.sizes());
  const at::Tensor pos = ids.to(at::kCPU).to(at::kFloat);
  std::vector<at::Tensor> coss, sins;
  for (size_t axis = 0; axis < axes_dims.size(); ++axis) {
    const int64_t dim = axes_dims[axis];
    // get_1d_rotary_pos_embed: 1.0 / (theta ** (arange(0, dim, 2, float64) / dim)); outer(pos, freqs).
    const at::Tensor exponents = at::arange(0, dim, 2, at::kDouble) / dim;
    const at::Tensor freqs = at::reciprocal(at::pow(at::Scalar(theta), exponents));
    const at::Tensor angles = at::outer(pos.select(1, static_cast<int64_t>(axis)), freqs);  // float64 [S, dim/2]
    coss.push_back(angles.cos().repeat_interleave(2, 1).to(at::kFloat));
    sins.push_back(angles.sin().repeat_interleave(2, 1).to(at::kFloat));
  }
  return {at::cat(coss, -1), at::cat(sins, -1)};
}

}  // namespace ditserve::models::flux
