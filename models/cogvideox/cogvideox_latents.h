// CogVideoX's latent grid for a request, as CogVideoXPipeline.__call__ / prepare_latents compute it.
#pragma once

#include <cstdint>

#include "models/cogvideox/cogvideox_config.h"

namespace ditserve::models::cogvideox {

struct LatentGrid {
  int64_t frames = 0;      // latent frames the transformer sees (1.5: padded to a multiple of patch_size_t)
  int64_t pad_frames = 0;  // 1.5's added frames, dropped from the front before decoding
  int64_t height = 0, width = 0;
  // video tokens: (frames / patch_size_t) * (height / p) * (width / p)
  int64_t tokens(const CogVideoXConfig& c) const {
    return (frames / (c.patch_size_t > 0 ? c.patch_size_t : 1)) * (height / c.patch_size) * (width / c.patch_size);
  }
};

// (num_frames - 1) // temporal_compression_ratio + 1 latent frames (+ 1.5's padding), height / scale rows.
LatentGrid GridOf(const CogVideoXConfig& c, int64_t num_frames, int64_t height, int64_t width);

}  // namespace ditserve::models::cogvideox
