// Device helpers shared by the FP8 kernels (fp8_quant.cu, fp8_scale.cu): 8 bf16 values (16 bytes) <-> 8 e4m3.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace ditserve::kernels {

// e4m3(float(x[i]) * mul) for the 8 bf16 in raw, round to nearest even; one cvt per pair, the lower byte holding
// .x (memory order).
__device__ __forceinline__ uint2 PackE4m3x8(const uint4& raw, float mul, __nv_saturation_t saturate) {
  const auto* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
  uint2 packed;
  auto* pairs = reinterpret_cast<__nv_fp8x2_storage_t*>(&packed);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    pairs[i] = __nv_cvt_float2_to_fp8x2(make_float2(f.x * mul, f.y * mul), saturate, __NV_E4M3);
  }
  return packed;
}

// bf16(float(x[i]) * mul) for the 8 e4m3 in packed (e4m3 -> half is exact).
__device__ __forceinline__ uint4 UnpackE4m3x8(const uint2& packed, float mul) {
  const auto* pairs = reinterpret_cast<const __nv_fp8x2_storage_t*>(&packed);
  uint4 raw;
  auto* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pairs[i], __NV_E4M3)));
    h[i] = __floats2bfloat162_rn(f.x * mul, f.y * mul);
  }
  return raw;
}

}  // namespace ditserve::kernels
