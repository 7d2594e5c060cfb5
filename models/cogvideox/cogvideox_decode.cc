#include "models/cogvideox/cogvideox_decode.h"

#include "engine/runtime/spatial_split.h"

#include <algorithm>
#include <vector>

namespace ditserve::models::cogvideox {

at::Tensor DecodeLatents(torch::jit::Module& vae, const at::Tensor& latents, int64_t pad_frames, double scaling_factor,
                         runtime::Communicator* split) {
  // decode_latents: permute to [B, C, F, h, w], then 1 / scaling_factor * latents (a Python float product).
  const at::Tensor z = latents.slice(1, pad_frames).permute({0, 2, 1, 3, 4}) * (1.0 / scaling_factor);
  // Each rank runs the whole frame-batch loop on its latent rows (the caches are per rank: row-local).
  const at::Tensor video = runtime::RunSplitByRows(split, z, /*dim=*/3, [&vae](const at::Tensor& rows) {
    const int64_t n = rows.size(2), batch = 2;  // vae.num_latent_frames_batch_size
    std::vector<at::Tensor> out;
    c10::IValue cache;
    for (int64_t i = 0; i < std::max<int64_t>(n / batch, 1); ++i) {
      const int64_t rem = n % batch;
      const at::Tensor zi = rows.slice(2, batch * i + (i == 0 ? 0 : rem), batch * (i + 1) + rem);
      c10::IValue r;
      if (i == 0) {
        // The first batch has no cache (its convs pad with copies of the first frame) and 1, 2 or 3 frames: the
        // decoder's odd-frame paths (first frame kept apart when upsampling in time) differ in graph.
        const char* method = zi.size(2) == 1 ? "first_single" : zi.size(2) % 2 == 1 ? "first_odd" : "first_even";
        r = vae.get_method(method)({zi});
      } else {
        r = vae.get_method("next")({zi, cache});
      }
      const auto& e = r.toTupleRef().elements();
      out.push_back(e[0].toTensor());
      cache = e[1];
    }
    return at::cat(out, 2);
  });
  return video.select(0, 0).permute({1, 0, 2, 3});
}

}  // namespace ditserve::models::cogvideox
