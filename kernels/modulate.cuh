// adaLN modulation for DiT blocks (torch-free host API; implemented in modulate.cu).
//
//   Modulate*:          y[b, s, :] = x[b, s, :] * (1 + scale[b, :]) + shift[b, :]
//   LayerNormModulate*: y[b, s, :] = LN(x[b, s, :]) * (1 + scale[b, :]) + shift[b, :]
//                       LN without affine: (x - mean) / sqrt(var + eps), biased variance (FLUX norm1).
//   GatedResidual*:     out[b, s, :] = x[b, s, :] + gate[b, :] * y[b, s, :]   (one fma, torch.addcmul's math)
//   RmsScale*:          n = x[b, s, :] * rsqrt(mean(x[b, s, :]^2) + eps) * scale[b, :]   (Mochi's modulated RMSNorm;
//                       scale fp32), y = n, or with a residual y = residual[b, s, :] + bf16(n) (rounded twice, as
//                       the eager graph adds the bf16 norm output to the stream)
//
// Layouts are contiguous row-major: x, y, out are [B, S, D]; scale, shift, gate are [B, D]. GatedResidual's y
// may have any batch stride y_batch_stride >= S * D (elements, a multiple of 8): rows [t, t + S) of a joint
// [text, video] output. bf16 buffers are passed
// as raw pointers to 16-bit bf16 values (__nv_bfloat16 / c10::BFloat16 / at::kBFloat16 storage).
// All arithmetic is fp32; bf16 results are rounded to nearest even once at the end.
//
// Requirements (else cudaErrorInvalidValue, nothing launched): B, S, D >= 0; D % 8 == 0 (bf16) or
// D % 4 == 0 (fp32); every pointer 16-byte aligned (16-byte vector loads/stores); for LayerNorm and RmsScale D <= 16384.
// y (out) may alias x (in place). Empty tensors return cudaSuccess without a launch. Each call is one kernel
// launch on `stream` and returns the launch status (cudaGetLastError()); execution errors surface on the
// next synchronising call as usual.
#pragma once

#include <cstdint>

#include <driver_types.h>  // cudaError_t (plain C header of the CUDA toolkit; no device code)

typedef struct CUstream_st* cudaStream_t;

namespace ditserve::kernels {

cudaError_t ModulateBf16(const void* x, const void* scale, const void* shift, void* y, int64_t B, int64_t S,
                         int64_t D, cudaStream_t stream);

cudaError_t ModulateF32(const float* x, const float* scale, const float* shift, float* y, int64_t B,
                        int64_t S, int64_t D, cudaStream_t stream);

cudaError_t GatedResidualBf16(const void* x, const void* gate, const void* y, int64_t y_batch_stride, void* out,
                              int64_t B, int64_t S, int64_t D, cudaStream_t stream);

cudaError_t LayerNormModulateBf16(const void* x, const void* scale, const void* shift, void* y, int64_t B,
                                  int64_t S, int64_t D, float eps, cudaStream_t stream);

// scale: fp32 [B, D]; residual: bf16 [B, S, D] or null; D <= 16384.
cudaError_t RmsScaleBf16(const void* x, const float* scale, const void* residual, void* y, int64_t B, int64_t S,
                         int64_t D, float eps, cudaStream_t stream);

}  // namespace ditserve::kernels
