// A model family's transformer as the denoise loop sees it: one request's evaluations on this rank.
//
// The family prepares, per request, everything an evaluation reads besides the latents (text embeddings,
// masks, rotary tables, per-step conditioning) for each CFG branch this rank runs, and hands them out as
// plain tensor lists. That keeps the loop family-agnostic: it can batch two branches (concatenate each input
// along its batch dim), replay an evaluation from a CUDA graph (the inputs are the graph's static buffers)
// and split it for First Block Cache, without knowing what the tensors mean.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace ditserve::runtime {

using TensorList = std::vector<at::Tensor>;

class Denoiser {
 public:
  virtual ~Denoiser() = default;

  // CFG branches prepared by the family, in the order the loop asked for (CfgPlan::branches()).
  virtual int num_branches() const = 0;
  // The inputs of one evaluation of `branch` at `step`, besides the latents. Undefined tensors stand for
  // absent optional inputs (no key mask). A bool input is an attention key mask: the loop never replays such an
  // evaluation from a CUDA graph (denoise_loop.cc, HasKeyMask).
  virtual TensorList Inputs(int branch, int64_t step) = 0;
  // For each entry of Inputs: the dim that holds the batch (the loop concatenates branches there), or -1
  // for inputs shared by every branch (rotary tables). Inputs with a batch dim must be defined on every
  // branch or on none.
  virtual std::vector<int64_t> InputBatchDims() const = 0;
  // What an evaluation bakes in besides its inputs' shapes and dtypes (for CUDA graph reuse), e.g. the
  // sequence split; "" when nothing.
  virtual std::string GraphKey() const = 0;

  // The noise prediction for `latents` (batch B) with inputs `in` (batch B): the latents' shape, gathered
  // over the sequence ranks.
  virtual at::Tensor Forward(const at::Tensor& latents, const TensorList& in) = 0;

  // First Block Cache splits Forward into three calls: First (embedding + the first block) returns the
  // hidden streams after it and the first block's residual of the main stream [B, tokens, C]; Rest runs the
  // remaining blocks on the streams; Head turns the final streams into the prediction (as Forward).
  // Head(Rest(First(x).streams)) must equal Forward(x).
  struct FirstBlock {
    TensorList streams;
    at::Tensor residual;
  };
  virtual FirstBlock First(const at::Tensor& latents, const TensorList& in) = 0;
  virtual TensorList Rest(const TensorList& streams, const TensorList& in) = 0;
  virtual at::Tensor Head(const TensorList& streams, const TensorList& in) = 0;
  // bool [tokens] of FirstBlock::residual on this rank: true for real tokens (padding is left out of the
  // cache's change measure); undefined when every token is real.
  virtual at::Tensor ResidualValidTokens() const = 0;
};

}  // namespace ditserve::runtime
