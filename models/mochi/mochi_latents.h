// Mochi's latent video geometry (MochiPipeline.prepare_latents) and the transformer output's layout.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace ditserve::models::mochi {

struct LatentGrid {
  int64_t frames = 0, height = 0, width = 0;  // latent frames, rows, columns
  // (num_frames - 1) / temporal + 1 latent frames, height / spatial rows, width / spatial columns.
  static LatentGrid For(int64_t num_frames, int64_t height, int64_t width, int64_t spatial, int64_t temporal);
  // Video tokens of the transformer: frames x (rows / p) x (columns / p).
  int64_t tokens(int64_t patch) const { return frames * (height / patch) * (width / patch); }
};

// Transformer output tokens [B, T * (H/p) * (W/p), p * p * C] -> latents [B, C, T, H, W] (diffusers' final
// reshape and permute).
at::Tensor Unpatchify(const at::Tensor& tokens, const LatentGrid& grid, int64_t patch);

}  // namespace ditserve::models::mochi
