// Rotary position embeddings over N position axes, as diffusers' get_1d_rotary_pos_embed(use_real=True,
// repeat_interleave_real=True) per axis, concatenated (FluxPosEmbed, HunyuanVideo's 3-D RoPE): frequencies
// 1 / theta ** (arange(0, d, 2) / d) in `freqs_dtype` (float64: FluxPosEmbed; float32: the function's default,
// HunyuanVideoRotaryPosEmbed), times float32 positions, cos/sin in that dtype rounded to float32, each value
// repeated twice. Computed on the CPU.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace ditserve::runtime {

// ids [S, n_axes] (positions per axis) -> (cos, sin), float32 [S, sum(axes_dims)].
std::pair<at::Tensor, at::Tensor> RotaryEmbedding(const at::Tensor& ids, const std::vector<int64_t>& axes_dims,
                                                  double theta, at::ScalarType freqs_dtype = at::kDouble);

}  // namespace ditserve::runtime
