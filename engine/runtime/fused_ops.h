// Fused elementwise operators of exported DiT blocks, registered as torch.ops.ditserve.{rms_rope,
// layer_norm_rope, rms_rope_per_head, rms_scale, layer_norm_modulate, linear_gelu, gated_residual, swiglu} for CPU
// and CUDA. The CPU (and any non-bf16 / unsupported-layout) path composes torch ops exactly as the unfused Python
// modules did (scripts/ditserve_export/ops.py has the same references), so fp32 exports are bit-identical to
// before; CUDA bf16 runs one kernel from kernels/.
//
//   rms_rope(x, weight, cos, sin, eps, x2=None, weight2=None) -> [B, H, S1+S2, D], stored as [B, S, H, D]
//       (a transposed view: attention reads it in place and returns its output in the same layout, so
//       merging the heads afterwards is free)
//       per-head RMSNorm (weight: [D]) then FLUX's repeat-interleaved RoPE (cos/sin fp32 [S1+S2, D]) of
//       x [B, S1, H*D] followed by x2 [B, S2, H*D] (its own weight2): a joint attention's text + image
//       queries (or keys) in one tensor. x / x2 may be column slices of a fused projection.
//   layer_norm_rope(x, weight, bias, cos, sin, eps, rope_from) -> [B, H, S, D], stored as [B, S, H, D]
//       CogVideoX's q/k: per-head LayerNorm (weight, bias [D]) of x [B, S, H*D] (a column slice of the fused
//       QKV projection), then diffusers' RoPE (cos/sin fp32 [S - rope_from, D]) on rows >= rope_from (the video
//       tokens after the text); cos/sin None: no rotation (CogVideoX-2b).
//   rms_rope_per_head(x, weight, cos, sin, eps, x2=None, weight2=None) -> [B, H, S1+S2, D], stored [B, S, H, D]
//       Mochi's q/k: per-head RMSNorm rounded once (x * rsqrt(mean(x^2) + eps) * weight) of the video rows x
//       [B, S1, H*D], rotated with per-head angles (cos/sin fp32 [S1, H, D/2], one per (even, odd) pair), then
//       the text rows x2 [B, S2, H*D] (weight2) unrotated.
//   rms_scale(x, scale, eps, residual=None) -> bf16(rms(x) * scale[:, None]) [+ residual]
//       Mochi's modulated RMSNorm in fp32 (scale: fp32 [B, D], e.g. 1 + scale_msa or tanh(gate)), rounded to x's
//       dtype, then added to the residual stream (a second rounding, as the eager graph adds).
//   layer_norm_modulate(x, scale, shift, eps) -> LN(x) * (1 + scale[:, None]) + shift[:, None]
//       LayerNorm without affine over the last dim of x [B, S, D]; scale, shift [B, D] (adaLN).
//   linear_gelu(x, weight, bias) -> gelu_tanh(x @ weight^T + bias)
//       on CUDA one cuBLASLt GEMM with the bias + GELU(tanh) epilogue (torch's _addmm_activation; its CPU
//       kernel applies the exact GELU instead, hence an op of our own with one meaning everywhere).
//   gated_residual(x, gate, y) -> x + gate[:, None] * y
//       the blocks' gated residual adds (torch.addcmul's math: one fma in fp32, rounded once); x, y [B, S, D],
//       gate [B, D] (an adaLN chunk). ATen's addcmul with a broadcast gate ran at about half the copy
//       bandwidth; the kernel streams x and y at the copy rate, y's rows dense with any batch stride (the
//       video rows of a joint [text, video] output).
//   swiglu(x) -> h * silu(g), [h, g] = x.chunk(2, -1)
//       diffusers' "swiglu" feed-forward activation (Mochi) on the first projection's output x [..., 2N]; one
//       read of x instead of the eager graph's three passes, bit-equal to it in bf16 (kernels/swiglu.cuh).
#pragma once

#include <optional>

#include <ATen/core/Tensor.h>

namespace ditserve::runtime {

at::Tensor RmsRope(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos, const at::Tensor& sin,
                   double eps, const std::optional<at::Tensor>& x2, const std::optional<at::Tensor>& weight2);
at::Tensor LayerNormRope(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                         const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin, double eps,
                         int64_t rope_from);
at::Tensor RmsRopePerHead(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos, const at::Tensor& sin,
                          double eps, const std::optional<at::Tensor>& x2, const std::optional<at::Tensor>& weight2);
at::Tensor RmsScale(const at::Tensor& x, const at::Tensor& scale, double eps, const std::optional<at::Tensor>& residual);
at::Tensor LayerNormModulate(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift, double eps);
at::Tensor LinearGelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);
at::Tensor GatedResidual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& y);
at::Tensor SwiGlu(const at::Tensor& x);

// The torch-op compositions (the CPU path), exposed for the GPU tests' reference.
at::Tensor RmsRopeReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                            const at::Tensor& sin, double eps, const std::optional<at::Tensor>& x2,
                            const std::optional<at::Tensor>& weight2);
at::Tensor LayerNormRopeReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                  const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                                  double eps, int64_t rope_from);
at::Tensor RmsRopePerHeadReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                                   const at::Tensor& sin, double eps, const std::optional<at::Tensor>& x2,
                                   const std::optional<at::Tensor>& weight2);
at::Tensor RmsScaleReference(const at::Tensor& x, const at::Tensor& scale, double eps,
                             const std::optional<at::Tensor>& residual);
at::Tensor LayerNormModulateReference(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift,
                                      double eps);
at::Tensor LinearGeluReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);
at::Tensor GatedResidualReference(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& y);
at::Tensor SwiGluReference(const at::Tensor& x);

}  // namespace ditserve::runtime
