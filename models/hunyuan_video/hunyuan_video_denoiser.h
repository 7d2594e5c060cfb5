// HunyuanVideo's transformer as the denoise loop's Denoiser: the exported module's methods
// (docs/models/hunyuan_video.md) over this rank's shard of [text tokens, video tokens].
//
// The latents stay in diffusers' layout [B, C, F, H, W]; every rank embeds the (1, 2, 2) patches of the whole
// clip (a cheap strided conv) and keeps its shard of the tokens; the head's patch tokens are gathered over the
// sequence ranks and unpatchified back into the latents' layout.
#pragma once

#include <string>
#include <vector>

#include <torch/script.h>

#include "engine/runtime/cp/sequence_layout.h"
#include "engine/runtime/denoiser.h"

namespace ditserve::models::hunyuan_video {

class HunyuanVideoDenoiser final : public runtime::Denoiser {
 public:
  // Per CFG branch and request, every step's rows, computed before the first step: the refined text shard
  // (the token refiner depends on the timestep), the adaLN conditioning, and the attention key mask of this
  // rank's tokens (the prompt's padding and the sharding's; always defined, so branches batch alike).
  struct Branch {
    at::Tensor txt;   // [steps, B, T_local, D]
    at::Tensor cond;  // [steps, B, mod_dim]
    at::Tensor mask;  // bool [B, S_local]
  };
  // Token grid after patching: frames x rows x columns; patch: the spatial patch size; channels: the latents'.
  struct Grid {
    int64_t frames = 0, rows = 0, cols = 0, patch = 2, channels = 16;
  };
  HunyuanVideoDenoiser(torch::jit::Module& transformer, int64_t num_layers, int64_t num_single_layers,
                       runtime::SequenceLayout layout, Grid grid, at::Tensor cos, at::Tensor sin,
                       std::vector<Branch> branches);

  int num_branches() const override { return static_cast<int>(branches_.size()); }
  runtime::TensorList Inputs(int branch, int64_t step) override;
  std::vector<int64_t> InputBatchDims() const override { return {0, 0, -1, -1, 0}; }
  std::string GraphKey() const override;
  at::Tensor Forward(const at::Tensor& latents, const runtime::TensorList& in) override;
  FirstBlock First(const at::Tensor& latents, const runtime::TensorList& in) override;
  runtime::TensorList Rest(const runtime::TensorList& streams, const runtime::TensorList& in) override;
  at::Tensor Head(const runtime::TensorList& streams, const runtime::TensorList& in) override;
  at::Tensor ResidualValidTokens() const override;

  static constexpr int kText = 0, kVideo = 1;  // the layout's segments (the blocks' [text, video] order)

 private:
  // patch embedding + this rank's shard + double blocks [0, end) -> (video, text); img_in: the embedded shard.
  runtime::TensorList Begin(const at::Tensor& latents, const runtime::TensorList& in, int64_t end, at::Tensor* img_in);
  runtime::TensorList Singles(const runtime::TensorList& streams, const runtime::TensorList& in);

  torch::jit::Module& transformer_;
  const int64_t num_layers_, num_single_layers_;
  const runtime::SequenceLayout layout_;
  const Grid grid_;
  const at::Tensor cos_, sin_;
  const std::vector<Branch> branches_;
};

// Patch tokens [B, F*h*w, C*p*p] -> latents [B, C, F, h*p, w*p] (the diffusers model's output reshape, p_t = 1).
at::Tensor Unpatchify(const at::Tensor& tokens, const HunyuanVideoDenoiser::Grid& grid);

}  // namespace ditserve::models::hunyuan_video
