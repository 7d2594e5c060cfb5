// Device helpers shared by the bf16 elementwise kernels (modulate.cu, swiglu.cu): one 16-byte vector of 8 bf16
// <-> 8 floats, rounded to nearest even on the way back.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace ditserve::kernels {

__device__ __forceinline__ void Unpack(const uint4& v, float (&f)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = __bfloat1622float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

__device__ __forceinline__ uint4 Pack(const float (&f)[8]) {
  uint4 v;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __float22bfloat162_rn(make_float2(f[2 * i], f[2 * i + 1]));
  return v;
}

}  // namespace ditserve::kernels
