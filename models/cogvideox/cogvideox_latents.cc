#include "models/cogvideox/cogvideox_latents.h"

namespace ditserve::models::cogvideox {

LatentGrid GridOf(const CogVideoXConfig& c, int64_t num_frames, int64_t height, int64_t width) {
  LatentGrid g;
  g.frames = (num_frames - 1) / c.temporal_compression_ratio + 1;
  if (c.patch_size_t > 0 && g.frames % c.patch_size_t != 0) g.pad_frames = c.patch_size_t - g.frames % c.patch_size_t;
  g.frames += g.pad_frames;
  g.height = height / c.vae_scale_factor;
  g.width = width / c.vae_scale_factor;
  return g;
}

}  // namespace ditserve::models::cogvideox
