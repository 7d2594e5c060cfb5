// The split-aware operators of exported VAE decoders (scripts/ditserve_export/vae.py), registered as
// torch.ops.ditserve.{halo_conv2d, group_norm, spatial_attention} for CPU and CUDA. With no SpatialSplit
// installed (spatial_split.h) each is the plain torch op; with one installed, each rank holds a range of
// rows (dim -2 of [B, C, H, W]) and gets exactly the full op's output restricted to its rows:
//
//   halo_conv2d        padding[0] rows from the ranks above and below (zeros at the image border), then
//                      the conv with no row padding.
//   group_norm         per-rank (count, mean, M2) of each (batch, group), all-gathered and combined in
//                      float64 (Chan et al.'s parallel variance); the local statistics are fp32 Welford
//                      (at::var_mean) as torch's own group_norm accumulates in fp32.
//   spatial_attention  local queries against all ranks' keys/values (all-gathered), [B, H, S, D] with S
//                      the rank's tokens (its rows flattened with the columns).
#pragma once

#include <cstdint>
#include <optional>

#include <ATen/core/Tensor.h>

#include "engine/runtime/spatial_split.h"

namespace ditserve::runtime {

at::Tensor HaloConv2d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      c10::IntArrayRef padding);
at::Tensor SplitGroupNorm(const at::Tensor& x, int64_t num_groups, const std::optional<at::Tensor>& weight,
                          const std::optional<at::Tensor>& bias, double eps);
at::Tensor SpatialAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// x with `halo` rows of the neighbouring ranks' pieces added on each side of `dim` (zeros beyond the
// first and last rank). The building block for any row-coupled op, e.g. conv3d split along H.
at::Tensor ExchangeHalo(const SpatialSplit& split, const at::Tensor& x, int64_t dim, int64_t halo);

}  // namespace ditserve::runtime
