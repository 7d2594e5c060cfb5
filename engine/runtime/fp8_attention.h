// FP8 (e4m3) attention: the opt-in `fp8_attention` of a worker group (docs/architecture.md). Attention is
// most of a video step (HunyuanVideo, Mochi, CogVideoX at their released sizes spend 70-90% of it there), and
// Hopper's FP8 tensor cores promise twice bf16's rate (cuDNN 9.19's kernel gives ~1.4x; this op, with its
// quantisation, 1.2-1.4x at the video shapes on an H100). The numerics, per call:
//   q, k, v: each multiplied by the largest power of two that keeps its absmax <= 448 and rounded to e4m3
//            (per-tensor current scaling: no calibration, nothing stored in the export; a power of two is
//            exact in any dtype, so the scaling itself adds no error and cannot overflow);
//   P = exp(S - rowmax) in [0, 1], scaled by 448 and rounded to e4m3 before P·V (fp32 accumulation);
//   O: rounded to e4m3 at half V's scale (|O| <= max|V| plus P's rounding), returned in q's dtype.
//   The log-sum-exp (ring attention's merge) is fp32.
// CUDA (bf16/fp16 q, compute capability 9.x, a build with the cuDNN frontend headers): cuDNN's fused FP8
// flash attention. Elsewhere (the CPU, fp32): the same quantisation composed of torch ops in fp32 with
// explicit scores; it differs from the fused kernel only where the kernel rounds P against a running
// row max instead of the final one. The CPU path lets CI serve fp8_attention groups end to end.
#pragma once

#include <optional>
#include <utility>

#include <ATen/core/Tensor.h>

namespace ditserve::runtime {

// q, k, v [B, H, S, D] (S_q may differ from S_k). Returns (out [B, H, S_q, D] in q's dtype, lse [B, H, S_q]
// fp32, undefined unless with_lse). No mask: callers hand the real keys (key_compaction.h) or take the
// reference, which takes an additive bias [B, 1, 1, S_k].
std::pair<at::Tensor, at::Tensor> Fp8Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               bool with_lse);
std::pair<at::Tensor, at::Tensor> Fp8AttentionReference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                        const std::optional<at::Tensor>& bias, bool with_lse);

// Whether the fused kernel is worth its quantisation passes for S_q x S_k scores: on an H100 (cuDNN 9.19) it ran
// at 0.6x bf16 cuDNN's speed at 4,608 tokens (FLUX 1024^2: the passes and launches dominate) and 1.2-1.4x at
// 17,776-44,776 (the video families). Shorter calls (a token refiner, FLUX, small requests) stay bf16.
bool Fp8AttentionPays(int64_t sq, int64_t sk);

// Whether Fp8Attention runs cuDNN's fused kernel for bf16/fp16 inputs on `device`. Elsewhere a CUDA device would
// take the reference, which materialises the scores: the engine refuses fp8_attention there instead.
bool Fp8AttentionRunsOn(const at::Device& device);

}  // namespace ditserve::runtime
