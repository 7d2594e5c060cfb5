// The split-aware operators of exported VAE decoders (scripts/ditserve_export/vae.py), registered as
// torch.ops.ditserve.{halo_conv2d, halo_conv3d, group_norm, spatial_attention, gather_rows} for CPU and CUDA. With no SpatialSplit
// installed (spatial_split.h) each is the plain torch op; with one installed, each rank holds a range of
// rows (dim -2 of [B, C, H, W]) and gets exactly the full op's output restricted to its rows:
//
//   halo_conv2d        padding[0] rows from the ranks above and below (zeros at the image border), then
//                      the conv with no row padding.
//   halo_conv3d        [B, C, T, H, W] video: the same along H (dim 3), with the border rows zeros or copies
//                      of the edge row (replicate, as the causal convs of HunyuanVideo and Mochi pad). T is
//                      never split: its causal padding and caches are the caller's.
//   group_norm         per-rank (count, mean, M2) of each (batch, group), all-gathered and combined in
//                      float64 (Chan et al.'s parallel variance); the local statistics are fp32 Welford
//                      (at::var_mean) as torch's own group_norm accumulates in fp32.
//   spatial_attention  local queries against all ranks' keys/values (all-gathered), [B, H, S, D] with S
//                      the rank's tokens (its rows flattened with the columns).
//   gather_rows        the whole tensor along the row axis `dim`: every rank's rows all-gathered in row order
//                      (for attention whose mask depends on the keys' positions, e.g. HunyuanVideo's
//                      frame-causal mid-block attention). Unsplit: a copy (the schema's output aliases nothing).
#pragma once

#include <cstdint>
#include <optional>

#include <ATen/core/Tensor.h>

#include "engine/runtime/spatial_split.h"

namespace ditserve::runtime {

at::Tensor HaloConv2d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      c10::IntArrayRef padding);
// F.pad(x, (pw, pw, ph, ph, time_pad, 0), mode = replicate ? "replicate" : zeros) then conv3d(stride, no
// padding): x [B, C, T, H, W], weight [O, C, kT, kH, kW], padding = {ph, pw}, time_pad frames in front (a causal
// conv's). Split by rows, H stride must be 1 and kH = 2 ph + 1.
at::Tensor HaloConv3d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      c10::IntArrayRef stride, c10::IntArrayRef padding, bool replicate, int64_t time_pad = 0);
at::Tensor SplitGroupNorm(const at::Tensor& x, int64_t num_groups, const std::optional<at::Tensor>& weight,
                          const std::optional<at::Tensor>& bias, double eps);
at::Tensor SpatialAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
at::Tensor GatherRowsOp(const at::Tensor& x, int64_t dim);

// What lies beyond the image border: zeros, or copies of the edge row (replicate padding).
enum class Border { kZeros, kReplicate };

// x with `halo` rows of the neighbouring ranks' pieces added on each side of `dim`, the image border's rows
// (beyond the first and last rank) filled as `border` says. The building block of every row-coupled op.
at::Tensor ExchangeHalo(const SpatialSplit& split, const at::Tensor& x, int64_t dim, int64_t halo,
                        Border border = Border::kZeros);

}  // namespace ditserve::runtime
