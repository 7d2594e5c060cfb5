#include "models/flux/flux_decode.h"

#include "engine/src/torch/spatial_split.h"
#include "models/flux/flux_latents.h"
#include "models/flux/flux_text.h"

namespace ditserve::models::flux {

at::Tensor DecodeLatents(torch::jit::Module& vae, const at::Tensor& packed, int64_t latent_h, int64_t latent_w,
                         double scaling_factor, double shift_factor) {
  return DecodeLatentsParallel(vae, packed, latent_h, latent_w, scaling_factor, shift_factor, nullptr);
}

at::Tensor DecodeLatentsParallel(torch::jit::Module& vae, const at::Tensor& packed, int64_t latent_h,
                                 int64_t latent_w, double scaling_factor, double shift_factor,
                                 torch_engine::Communicator* comm) {
  at::Tensor latents = UnpackLatents(packed, latent_h, latent_w);
  latents = (latents / scaling_factor) + shift_factor;
  at::Tensor image = torch_engine::RunSplitByRows(comm, latents, /*dim=*/2, [&vae](const at::Tensor& z) {
    at::Tensor rows = FirstTensor(vae.forward({z}), "vae_decoder.pt");
    TORCH_CHECK(rows.dim() == 4 && rows.size(1) == 3, "vae_decoder.pt returned ", rows.sizes(),
                "; expected [1, 3, H, W]");
    return rows;
  });
  return image;
}

at::Tensor PostprocessImage(const at::Tensor& image) {
  at::Tensor x = (image * 0.5 + 0.5).clamp(0, 1);
  x = x.to(at::kCPU).permute({0, 2, 3, 1}).to(at::kFloat);
  x = (x * 255).round().to(at::kByte);
  return x.select(0, 0).contiguous();
}

}  // namespace ditserve::models::flux
