#include "models/flux/flux_decode.h"

#include "engine/runtime/spatial_split.h"
#include "models/flux/flux_latents.h"
#include "engine/runtime/torchscript.h"

namespace ditserve::models::flux {

at::Tensor DecodeLatentsParallel(torch::jit::Module& vae, const at::Tensor& packed, int64_t latent_h,
                                 int64_t latent_w, double scaling_factor, double shift_factor,
                                 runtime::Communicator* comm) {
  at::Tensor latents = UnpackLatents(packed, latent_h, latent_w);
  latents = (latents / scaling_factor) + shift_factor;
  at::Tensor image = runtime::RunSplitByRows(comm, latents, /*dim=*/2, [&vae](const at::Tensor& z) {
    at::Tensor rows = runtime::FirstTensor(vae.forward({z}), "vae_decoder.pt");
    TORCH_CHECK(rows.dim() == 4 && rows.size(1) == 3, "vae_decoder.pt returned ", rows.sizes(),
                "; expected [1, 3, H, W]");
    return rows;
  });
  return image;
}

}  // namespace ditserve::models::flux
