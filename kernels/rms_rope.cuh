// Per-head RMSNorm or LayerNorm + rotary embedding of attention queries/keys (torch-free host API; rms_rope.cu).
//
// For every batch b, token s of the concatenation [part 1 rows, part 2 rows] and head h:
//   n   = bf16(bf16(x * rsqrt(mean(x^2) + eps)) * w)                (RMSNorm over the head's D values)
//   out[b, s, h, 2i]   = bf16(n[2i] * cos[s, 2i]     - n[2i+1] * sin[s, 2i])
//   out[b, s, h, 2i+1] = bf16(n[2i+1] * cos[s, 2i+1] + n[2i] * sin[s, 2i+1])
// i.e. FLUX's RMSNorm (fp32 statistics, the eager path's two bf16 roundings) followed by its
// repeat-interleaved RoPE, reading straight from a projection's output ([B, S, H*D] with any row and
// batch strides: a column slice of a fused QKV GEMM) and writing [B, S1+S2, H, D] (the "BSHD" layout
// that attention kernels read as [B, H, S, D] with strides, and whose output then needs no transpose).
// Part 2 (optional, its own weight) lets the joint attention of the double-stream blocks write text and
// image heads into one tensor without a concatenation.
//
// LayerNormRopeBf16 is the same with CogVideoX's per-head LayerNorm (affine, ATen's layer_norm roundings):
//   n = bf16(w * ((x - mean(x)) * rsqrt(var(x) + eps)) + b)    (fp32 statistics, biased variance, one rounding)
// and the rotation only on rows s >= rope_from (the video tokens after the text), with cos/sin row s - rope_from;
// rows before it (the text tokens) are n unrotated.
//
// RmsRopePerHeadBf16 is Mochi's: the RMSNorm rounded once, n = bf16(x * rsqrt(mean(x^2) + eps) * w), part 1 (the
// video tokens) rotated with per-head angles (cos/sin [S1, H, D/2], one value per pair: pair (2i, 2i+1) of head h
// uses cos[s, h, i] for both elements, as the repeat-interleaved table holds it), part 2 (the text) not rotated.
#pragma once

#include <cstdint>

#include <driver_types.h>

typedef struct CUstream_st* cudaStream_t;

namespace ditserve::kernels {

struct RmsRopePart {
  const void* x = nullptr;   // bf16 [B, S, H*D]; element (b, s, c) at x[b*batch_stride + s*row_stride + c]
  const void* w = nullptr;   // bf16 [D] norm weight
  int64_t rows = 0;          // S of this part (0: part absent)
  int64_t batch_stride = 0;  // in elements
  int64_t row_stride = 0;    // in elements
};

// cos, sin: fp32 [S1 + S2, D] contiguous. out: bf16 [B, S1 + S2, H, D] contiguous.
// Requirements (else cudaErrorInvalidValue, nothing launched): D in {64, 128, 256}; B, H >= 1;
// strides even and pointers 4-byte aligned (bf16 pairs are loaded as one 32-bit word); B*(S1+S2) < 2^31.
cudaError_t RmsRopeBf16(const RmsRopePart& part1, const RmsRopePart& part2, const float* cos, const float* sin,
                        void* out, int64_t B, int64_t H, int64_t D, float eps, cudaStream_t stream);

// part: x and LayerNorm weight w as above (S = part.rows); bias: bf16 [D]; 0 <= rope_from <= S; cos, sin: fp32
// [S - rope_from, D] contiguous (may be null when rope_from == S: no rotation). out: bf16 [B, S, H, D] contiguous.
// Requirements as RmsRopeBf16's (bias 4-byte aligned too).
cudaError_t LayerNormRopeBf16(const RmsRopePart& part, const void* bias, int64_t rope_from, const float* cos,
                              const float* sin, void* out, int64_t B, int64_t H, int64_t D, float eps,
                              cudaStream_t stream);

// cos, sin: fp32 [S1, H, D/2] contiguous (4-byte aligned). Requirements otherwise as RmsRopeBf16's.
cudaError_t RmsRopePerHeadBf16(const RmsRopePart& part1, const RmsRopePart& part2, const float* cos,
                               const float* sin, void* out, int64_t B, int64_t H, int64_t D, float eps,
                               cudaStream_t stream);

}  // namespace ditserve::kernels
