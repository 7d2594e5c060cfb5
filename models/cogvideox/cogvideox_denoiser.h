// CogVideoX's transformer as the denoise loop's Denoiser: the exported module's methods (docs/models/cogvideox.md)
// over this rank's shard of [text tokens, video tokens].
#pragma once

#include <string>
#include <vector>

#include <torch/script.h>

#include "engine/runtime/cp/sequence_layout.h"
#include "engine/runtime/denoiser.h"

namespace ditserve::models::cogvideox {

class CogVideoXDenoiser final : public runtime::Denoiser {
 public:
  // Per CFG branch and request: the embedded text shard and every step's time embedding.
  struct Branch {
    at::Tensor text;  // [B, T_local, D]
    at::Tensor emb;   // [steps, B, time_embed_dim]
  };
  // Shared by the branches: cos/sin the RoPE rows of this rank's video tokens (5b, 1.5; else undefined), pos
  // 2b's sin-cos positions of every video token (else undefined), mask bool [1, S_local] where the sharding
  // padded (else undefined: CogVideoX attends to all 226 text tokens, padding included, as diffusers).
  // grid: the latents' [frames, height, width].
  CogVideoXDenoiser(torch::jit::Module& transformer, int64_t num_layers, runtime::SequenceLayout layout,
                    at::Tensor cos, at::Tensor sin, at::Tensor pos, at::Tensor mask, std::vector<int64_t> grid,
                    std::vector<Branch> branches);

  int num_branches() const override { return static_cast<int>(branches_.size()); }
  runtime::TensorList Inputs(int branch, int64_t step) override;
  // The key mask has a batch dim: the loop batches both CFG branches and attention wants [B, S] masks.
  std::vector<int64_t> InputBatchDims() const override { return {0, 0, -1, -1, -1, 0}; }
  std::string GraphKey() const override;
  at::Tensor Forward(const at::Tensor& latents, const runtime::TensorList& in) override;
  FirstBlock First(const at::Tensor& latents, const runtime::TensorList& in) override;
  runtime::TensorList Rest(const runtime::TensorList& streams, const runtime::TensorList& in) override;
  at::Tensor Head(const runtime::TensorList& streams, const runtime::TensorList& in) override;
  at::Tensor ResidualValidTokens() const override;

  static constexpr int kText = 0, kVideo = 1;  // the layout's segments

 private:
  at::Tensor EmbedVideo(const at::Tensor& latents, const runtime::TensorList& in);
  runtime::TensorList Blocks(int64_t start, int64_t end, const runtime::TensorList& streams,
                             const runtime::TensorList& in);

  torch::jit::Module& transformer_;
  const int64_t num_layers_;
  const runtime::SequenceLayout layout_;
  const at::Tensor cos_, sin_, pos_, mask_;
  const std::vector<int64_t> grid_;
  const std::vector<Branch> branches_;
};

}  // namespace ditserve::models::cogvideox
