// Fused elementwise operators of exported DiT blocks, registered as torch.ops.ditserve.{rms_rope,
// layer_norm_modulate, linear_gelu, gated_residual} for CPU and CUDA. The CPU (and any non-bf16 / unsupported-layout) path composes
// torch ops exactly as the unfused Python modules did (scripts/ditserve_export/ops.py has the same
// references), so fp32 exports are bit-identical to before; CUDA bf16 runs one kernel from kernels/.
//
//   rms_rope(x, weight, cos, sin, eps, x2=None, weight2=None) -> [B, H, S1+S2, D], stored as [B, S, H, D]
//       (a transposed view: attention reads it in place and returns its output in the same layout, so
//       merging the heads afterwards is free)
//       per-head RMSNorm (weight: [D]) then FLUX's repeat-interleaved RoPE (cos/sin fp32 [S1+S2, D]) of
//       x [B, S1, H*D] followed by x2 [B, S2, H*D] (its own weight2): a joint attention's text + image
//       queries (or keys) in one tensor. x / x2 may be column slices of a fused projection.
//   layer_norm_modulate(x, scale, shift, eps) -> LN(x) * (1 + scale[:, None]) + shift[:, None]
//       LayerNorm without affine over the last dim of x [B, S, D]; scale, shift [B, D] (adaLN).
//   linear_gelu(x, weight, bias) -> gelu_tanh(x @ weight^T + bias)
//       on CUDA one cuBLASLt GEMM with the bias + GELU(tanh) epilogue (torch's _addmm_activation; its CPU
//       kernel applies the exact GELU instead, hence an op of our own with one meaning everywhere).
//   gated_residual(x, gate, y) -> x + gate[:, None] * y
//       the blocks' gated residual adds (torch.addcmul's math: one fma in fp32, rounded once); x, y [B, S, D],
//       gate [B, D] (an adaLN chunk). ATen's addcmul with a broadcast gate ran at about half the copy
//       bandwidth; the kernel streams x and y at the copy rate.
#pragma once

#include <optional>

#include <ATen/core/Tensor.h>

namespace ditserve::runtime {

at::Tensor RmsRope(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos, const at::Tensor& sin,
                   double eps, const std::optional<at::Tensor>& x2, const std::optional<at::Tensor>& weight2);
at::Tensor LayerNormModulate(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift, double eps);
at::Tensor LinearGelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);
at::Tensor GatedResidual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& y);

// The torch-op compositions (the CPU path), exposed for the GPU tests' reference.
at::Tensor RmsRopeReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                            const at::Tensor& sin, double eps, const std::optional<at::Tensor>& x2,
                            const std::optional<at::Tensor>& weight2);
at::Tensor LayerNormModulateReference(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift,
                                      double eps);
at::Tensor LinearGeluReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);
at::Tensor GatedResidualReference(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& y);

}  // namespace ditserve::runtime
