// Row-wise FP8 (e4m3) quantisation of GEMM inputs (torch-free host API; fp8_quant.cu).
//
// Row r of the logical input is [part a's row r, part b's row r] (part b optional), each part optionally
// passed through GELU(tanh) first, rounded to bf16 as the unfused op would (y = bf16(gelu(x)); computed as
// x * sigmoid(2u) with fast exp: within ~1e-6 of torch's tanh form before that rounding). Then
//   scale[r] = max(absmax(y), 1e-12) * fp32(1/448)              (448 = e4m3's largest finite value)
//   q[r, c]  = e4m3(clamp(y[c] * fp32(1 / scale[r]), -448, 448))  (round to nearest even, saturating)
// so that y ~= q * scale with every row using e4m3's full range. This is the activation side of an FP8
// GEMM with row-wise scales (torch's _scaled_mm: scale_a [M, 1], scale_b [1, N]); folding GELU and the
// concatenation of two inputs into it means the GEMM that follows needs no other pass over its input.
#pragma once

#include <cstdint>

#include <driver_types.h>

typedef struct CUstream_st* cudaStream_t;

namespace ditserve::kernels {

struct Fp8RowPart {
  const void* x = nullptr;   // bf16 [B, S, cols]; element (b, s, c) at x[b*batch_stride + s*row_stride + c]
  int64_t cols = 0;          // 0: part absent
  int64_t batch_stride = 0;  // in elements
  int64_t row_stride = 0;    // in elements
  bool gelu = false;         // apply GELU(tanh) before quantising
};

// q: e4m3 [B*S, a.cols + b.cols] contiguous; scale: fp32 [B*S].
// Requirements (else cudaErrorInvalidValue, nothing launched): a.cols >= 8; a.cols + b.cols <= 16384 (a row
// is held in shared memory); every cols, stride and the pointers 16-byte aligned (multiples of 8 elements);
// B*S < 2^31.
cudaError_t Fp8QuantizeRowsBf16(const Fp8RowPart& a, const Fp8RowPart& b, int64_t B, int64_t S, void* q,
                                float* scale, cudaStream_t stream);

}  // namespace ditserve::kernels
