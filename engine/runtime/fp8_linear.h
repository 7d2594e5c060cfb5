// FP8 (e4m3) linear layers with row-wise scales: the opt-in "fp8" weights of an export
// (docs/model_format.md), registered as torch.ops.ditserve.fp8_linear for CPU and CUDA.
//
//   fp8_linear(x, weight, weight_scale, bias=None, gelu_x=False, x2=None, gelu_x2=False) -> bf16 [..., N]
//       y = [act(x), act(x2)] (concatenated along the last dim; act = GELU(tanh) where asked, else identity)
//       out = dequant(quant_rows(y)) @ (weight * weight_scale[:, None])^T + bias
//     weight: e4m3 [N, K], weight_scale: fp32 [N] (one scale per output feature, chosen at export);
//     quant_rows: each row of y scaled so its absmax maps to 448 (kernels/fp8_quant.cuh has the exact
//     rounding). GELU and the concatenation ride in the quantisation pass, so the MLP's down projection
//     and FLUX's single-block proj_out([attn, gelu(mlp)]) read their inputs once.
//   CUDA (bf16, compute capability >= 8.9): the quantisation kernel, then one torch _scaled_mm (FP8 tensor
//   cores, fp32 accumulation, bias in the epilogue). Elsewhere: the same math composed of torch ops in
//   fp32 (slow, exact reference: the GPU path differs only by accumulation order).
#pragma once

#include <optional>
#include <utility>

#include <ATen/core/Tensor.h>

namespace ditserve::runtime {

at::Tensor Fp8Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_scale,
                     const std::optional<at::Tensor>& bias, bool gelu_x, const std::optional<at::Tensor>& x2,
                     bool gelu_x2);
at::Tensor Fp8LinearReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_scale,
                              const std::optional<at::Tensor>& bias, bool gelu_x, const std::optional<at::Tensor>& x2,
                              bool gelu_x2);

// Whether fp8_linear runs as FP8 GEMMs on `device` (a CUDA device with compute capability >= 8.9 in a build
// with the kernels). Elsewhere it is correct but dequantises every weight on every call: on the CPU that is
// what CI runs tiny models with; on an older GPU the engine refuses fp8 exports instead (engine.cc).
bool Fp8GemmsRunOn(const at::Device& device);

// The quantisation alone: (q e4m3 [M, K], scale fp32 [M, 1]) for the M = prod(leading dims) rows; the kernel
// where it applies, else the composition. Exposed for the GPU tests.
std::pair<at::Tensor, at::Tensor> Fp8QuantizeRows(const at::Tensor& x, bool gelu_x,
                                                  const std::optional<at::Tensor>& x2, bool gelu_x2);
std::pair<at::Tensor, at::Tensor> Fp8QuantizeRowsReference(const at::Tensor& x, bool gelu_x,
                                                           const std::optional<at::Tensor>& x2, bool gelu_x2);

}  // namespace ditserve::runtime
