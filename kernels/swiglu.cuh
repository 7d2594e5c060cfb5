// SwiGLU activation (torch-free host API; implemented in swiglu.cu), as diffusers' GELU-gated feed-forward
// "swiglu" computes it on the first projection's output x = [h, g]:
//
//   y[r, j] = h * silu(g),  h = x[r, j], g = x[r, inner + j],  silu(g) = g / (1 + exp(-g))
//
// with eager bf16's roundings: silu(g) is computed in fp32 and rounded to bf16, the product in fp32 and rounded
// again (so the result equals torch's `h * F.silu(g)` bit for bit). One read of x and one write of y instead of
// the eager graph's three reads and two writes.
//
// Layouts: x is [rows, 2 * inner] with row stride x_row_stride (elements) >= 2 * inner; y is contiguous
// [rows, inner]. bf16 buffers are raw pointers to 16-bit bf16 values.
//
// Requirements (else cudaErrorInvalidValue, nothing launched): rows, inner >= 0; inner % 8 == 0;
// x_row_stride % 8 == 0; x and y 16-byte aligned; y must not overlap x. Empty tensors return cudaSuccess
// without a launch. One kernel launch on `stream`; returns the launch status (cudaGetLastError()).
#pragma once

#include <cstdint>

#include <driver_types.h>  // cudaError_t (plain C header of the CUDA toolkit; no device code)

typedef struct CUstream_st* cudaStream_t;

namespace ditserve::kernels {

cudaError_t SwiGluBf16(const void* x, int64_t x_row_stride, void* y, int64_t rows, int64_t inner,
                       cudaStream_t stream);

}  // namespace ditserve::kernels
