// FLUX's transformer as the denoise loop's Denoiser: the exported module's methods (docs/model_format.md)
// over this rank's shard of [text tokens, image tokens].
#pragma once

#include <string>
#include <vector>

#include <torch/script.h>

#include "engine/runtime/cp/sequence_layout.h"
#include "engine/runtime/denoiser.h"

namespace ditserve::models::flux {

class FluxDenoiser final : public runtime::Denoiser {
 public:
  // Per CFG branch and request: the embedded text shard (embed_text) and every step's conditioning rows
  // (every block's adaLN modulation, computed for the whole schedule before the first step).
  struct Branch {
    at::Tensor txt;   // [B, T_local, D]
    at::Tensor cond;  // [steps, B, mod_dim]
  };
  // cos/sin: the rotary rows of this rank's tokens; mask: bool [1, S_local] where the sharding padded, else
  // undefined (FLUX attends to every T5 token, as diffusers; the mask only hides sequence padding).
  FluxDenoiser(torch::jit::Module& transformer, int64_t num_layers, int64_t num_single_layers,
               runtime::SequenceLayout layout, at::Tensor cos, at::Tensor sin, at::Tensor mask,
               std::vector<Branch> branches);

  int num_branches() const override { return static_cast<int>(branches_.size()); }
  runtime::TensorList Inputs(int branch, int64_t step) override;
  std::vector<int64_t> InputBatchDims() const override { return {0, 0, -1, -1, -1}; }
  std::string GraphKey() const override;
  at::Tensor Forward(const at::Tensor& latents, const runtime::TensorList& in) override;
  FirstBlock First(const at::Tensor& latents, const runtime::TensorList& in) override;
  runtime::TensorList Rest(const runtime::TensorList& streams, const runtime::TensorList& in) override;
  at::Tensor Head(const runtime::TensorList& streams, const runtime::TensorList& in) override;
  at::Tensor ResidualValidTokens() const override;

  static constexpr int kText = 0, kImage = 1;  // the layout's segments

 private:
  // image embedding + double blocks [0, end) -> (img, txt); img_in: the embedded image tokens.
  runtime::TensorList Begin(const at::Tensor& latents, const runtime::TensorList& in, int64_t end, at::Tensor* img_in);
  // every single block -> (img, txt)
  runtime::TensorList Singles(const runtime::TensorList& streams, const runtime::TensorList& in);

  torch::jit::Module& transformer_;
  const int64_t num_layers_, num_single_layers_;
  const runtime::SequenceLayout layout_;
  const at::Tensor cos_, sin_, mask_;
  const std::vector<Branch> branches_;
};

}  // namespace ditserve::models::flux
