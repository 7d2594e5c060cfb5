// SwiGLU activation; API and contract in swiglu.cuh.
#include "swiglu.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "bf16_pack.cuh"

namespace ditserve::kernels {
namespace {

__device__ __forceinline__ float RoundBf16(float f) { return __bfloat162float(__float2bfloat16_rn(f)); }

// One thread per 8 outputs: grid-stride over rows * inner / 8 vectors.
__global__ void __launch_bounds__(256) SwiGluKernel(const uint4* x, int64_t x_row_v, uint4* y, int64_t rows,
                                                    int64_t inner_v) {
  const int64_t n = rows * inner_v;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / inner_v, c = i - r * inner_v;
    float h[8], g[8];
    Unpack(x[r * x_row_v + c], h);
    Unpack(x[r * x_row_v + inner_v + c], g);
#pragma unroll
    for (int k = 0; k < 8; ++k) h[k] *= RoundBf16(g[k] / (1.0f + expf(-g[k])));  // torch's silu, then its mul
    y[i] = Pack(h);
  }
}

}  // namespace

cudaError_t SwiGluBf16(const void* x, int64_t x_row_stride, void* y, int64_t rows, int64_t inner,
                       cudaStream_t stream) {
  const auto misaligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) != 0; };
  if (rows < 0 || inner < 0 || inner % 8 != 0 || x_row_stride % 8 != 0 || x_row_stride < 2 * inner ||
      misaligned(x) || misaligned(y)) {
    return cudaErrorInvalidValue;
  }
  if (rows == 0 || inner == 0) return cudaSuccess;
  const int64_t vectors = rows * (inner / 8);
  const int threads = 256;
  const int64_t blocks = (vectors + threads - 1) / threads;
  SwiGluKernel<<<unsigned(blocks < 65535 * 8 ? blocks : 65535 * 8), threads, 0, stream>>>(
      static_cast<const uint4*>(x), x_row_stride / 8, static_cast<uint4*>(y), rows, inner / 8);
  return cudaGetLastError();
}

}  // namespace ditserve::kernels
