// Mochi's transformer as the denoise loop's Denoiser: the exported module's methods (docs/models/mochi.md)
// over this rank's shard of [video tokens, text tokens].
#pragma once

#include <string>
#include <vector>

#include <torch/script.h>

#include "engine/runtime/cp/sequence_layout.h"
#include "engine/runtime/denoiser.h"
#include "models/mochi/mochi_latents.h"

namespace ditserve::models::mochi {

class MochiDenoiser final : public runtime::Denoiser {
 public:
  // Per CFG branch and request: the projected caption shard, every step's modulation rows and the attention
  // key mask of this rank's tokens (the prompt's padding and the sharding's; undefined when every key is real).
  struct Branch {
    at::Tensor txt;   // [1, L_local, pooled_projection_dim]
    at::Tensor cond;  // [steps, 1, mod_dim]
    at::Tensor mask;  // bool [1, S_local] or undefined
  };
  // cos/sin: float32 [S_video_local, heads, head_dim / 2], the rotary rows of this rank's video tokens.
  MochiDenoiser(torch::jit::Module& transformer, int64_t num_layers, int64_t patch, LatentGrid grid,
                runtime::SequenceLayout layout, at::Tensor cos, at::Tensor sin, std::vector<Branch> branches);

  int num_branches() const override { return static_cast<int>(branches_.size()); }
  runtime::TensorList Inputs(int branch, int64_t step) override;
  std::vector<int64_t> InputBatchDims() const override { return {0, 0, -1, -1, 0}; }
  std::string GraphKey() const override;
  at::Tensor Forward(const at::Tensor& latents, const runtime::TensorList& in) override;
  FirstBlock First(const at::Tensor& latents, const runtime::TensorList& in) override;
  runtime::TensorList Rest(const runtime::TensorList& streams, const runtime::TensorList& in) override;
  at::Tensor Head(const runtime::TensorList& streams, const runtime::TensorList& in) override;
  at::Tensor ResidualValidTokens() const override;

  static constexpr int kVideo = 0, kText = 1;  // the layout's segments (diffusers' order)

 private:
  at::Tensor Embed(const at::Tensor& latents) const;
  runtime::TensorList Blocks(int64_t start, int64_t end, const runtime::TensorList& streams,
                             const runtime::TensorList& in);

  torch::jit::Module& transformer_;
  const int64_t num_layers_, patch_;
  const LatentGrid grid_;
  const runtime::SequenceLayout layout_;
  const at::Tensor cos_, sin_;
  const std::vector<Branch> branches_;
};

}  // namespace ditserve::models::mochi
