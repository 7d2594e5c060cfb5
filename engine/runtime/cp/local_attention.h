// Attention on one rank's blocks, returning the log-sum-exp so partial results over different key
// blocks can be merged exactly (ring attention). Masks become finite additive biases: a fully masked
// block then yields a huge negative LSE (weight exactly 0 after merging with any real block) instead of
// the kernels' "LSE 0, output 0" convention for all -inf rows, which would corrupt the merge.
#pragma once

#include <optional>

#include <ATen/ATen.h>

namespace ditserve::runtime {

struct AttentionPartial {
  at::Tensor out;  // [B, H, S_q, D], q's dtype
  at::Tensor lse;  // [B, H, S_q] float32
};

// key_mask: bool [B, S_k], true = attend. Picks cuDNN / efficient attention on CUDA and the flash
// CPU kernel on CPU. fp8: FP8 attention (fp8_attention.h) for unmasked half/bf16 blocks on CUDA and its
// reference off CUDA; masked blocks on CUDA (a ring step over padded text keys) stay bf16, as do blocks cuDNN has
// no FP8 plan for (warned once).
AttentionPartial AttentionWithLse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const std::optional<at::Tensor>& key_mask, bool fp8 = false);

// Folds `part` into the running (acc_out float32, acc_lse float32); an undefined acc_out starts it.
void MergeAttention(at::Tensor& acc_out, at::Tensor& acc_lse, const AttentionPartial& part);

// bool [B, S_k] -> additive bias [B, 1, 1, S_k] in `dtype`: 0 where attended, a large finite negative
// value where masked.
at::Tensor MaskToBias(const at::Tensor& key_mask, at::ScalarType dtype);

}  // namespace ditserve::runtime
