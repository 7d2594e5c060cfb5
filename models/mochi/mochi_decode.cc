#include "models/mochi/mochi_decode.h"

#include "engine/runtime/spatial_split.h"
#include "engine/runtime/torchscript.h"

#include <algorithm>
#include <vector>

namespace ditserve::models::mochi {

at::Tensor DecodeVideo(torch::jit::Module& vae, const MochiConfig& c, const at::Tensor& latents,
                       runtime::Communicator* split) {
  const auto opts = latents.options();
  const int64_t ch = latents.size(1);
  // diffusers builds mean/std as tensors in the latents' dtype, then latents * std / scaling_factor + mean.
  const at::Tensor mean = at::tensor(c.latents_mean, at::kDouble).to(opts.dtype()).to(opts.device()).view({1, ch, 1, 1, 1});
  const at::Tensor std = at::tensor(c.latents_std, at::kDouble).to(opts.dtype()).to(opts.device()).view({1, ch, 1, 1, 1});
  const at::Tensor z = latents * std / c.scaling_factor + mean;
  const at::Tensor video = runtime::RunSplitByRows(split, z, /*dim=*/3, [&vae](const at::Tensor& rows) {
    at::Tensor out;
    if (!vae.find_method("decode_chunk")) {  // an export without chunked decode: all frames at once
      out = runtime::FirstTensor(vae.forward({rows}), "vae_decoder.pt");
    } else {
      std::vector<at::Tensor> parts;
      c10::List<at::Tensor> caches;
      const int64_t t = rows.size(2);
      for (int64_t start = 0; start < t; start += kLatentFramesPerChunk) {
        const at::Tensor chunk = rows.narrow(2, start, std::min(kLatentFramesPerChunk, t - start));
        const auto r = vae.get_method("decode_chunk")({chunk, caches, start == 0}).toTuple();
        parts.push_back(r->elements()[0].toTensor());
        caches = r->elements()[1].toTensorList();
      }
      out = at::cat(parts, 2);
    }
    TORCH_CHECK(out.dim() == 5 && out.size(1) == 3, "vae_decoder.pt returned ", out.sizes(),
                "; expected [1, 3, F, H, W]");
    return out;
  });
  return video[0].permute({1, 0, 2, 3});  // [F, 3, H, W]
}

}  // namespace ditserve::models::mochi
