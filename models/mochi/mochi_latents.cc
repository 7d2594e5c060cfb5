#include "models/mochi/mochi_latents.h"

namespace ditserve::models::mochi {

LatentGrid LatentGrid::For(int64_t num_frames, int64_t height, int64_t width, int64_t spatial, int64_t temporal) {
  return {(num_frames - 1) / temporal + 1, height / spatial, width / spatial};
}

at::Tensor Unpatchify(const at::Tensor& tokens, const LatentGrid& g, int64_t p) {
  const int64_t b = tokens.size(0);
  return tokens.reshape({b, g.frames, g.height / p, g.width / p, p, p, -1})
      .permute({0, 6, 1, 2, 4, 3, 5})
      .reshape({b, -1, g.frames, g.height, g.width});
}

}  // namespace ditserve::models::mochi
