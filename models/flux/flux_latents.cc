#include "models/flux/flux_latents.h"

namespace ditserve::models::flux {

int64_t LatentSize(int64_t pixels, int64_t vae_scale_factor) { return 2 * (pixels / (vae_scale_factor * 2)); }

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

}  // namespace ditserve::models::flux
