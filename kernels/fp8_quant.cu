// Row-wise e4m3 quantisation; contract in fp8_quant.cuh.
#include "fp8_quant.cuh"

#include "fp8_pack.cuh"

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ditserve::kernels {
namespace {

constexpr int kThreads = 256;    // one block per row
constexpr int kMaxCols = 16384;  // a row in shared memory: 32 KB, under the 48 KB default limit
constexpr float kE4m3Max = 448.f;
constexpr float kInvE4m3Max = 1.f / kE4m3Max;  // scale = absmax * this (fp32 multiply; the references do the same)

// GELU(tanh) rounded to bf16 like the eager op's output, as x * sigmoid(2u) = 0.5 x (1 + tanh(u)): one
// exp and one fast division instead of tanhf, which made the kernel ALU-bound. Agrees with torch's
// formula to ~1e-6 relative, far below the bf16 rounding that follows.
__device__ __forceinline__ float Activate(float x, bool gelu) {
  if (!gelu) return x;
  constexpr float kBeta = 0.7978845608028654f, kKappa = 0.044715f;
  const float u = kBeta * (x + kKappa * x * x * x);
  return __bfloat162float(__float2bfloat16_rn(__fdividef(x, 1.f + __expf(-2.f * u))));
}

// 8 bf16 (16 bytes) at p, activated, as packed bf16.
__device__ __forceinline__ uint4 LoadActivated(const __nv_bfloat16* p, bool gelu) {
  uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
  if (gelu) {
    auto* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(h[i]);
      h[i] = __floats2bfloat162_rn(Activate(f.x, true), Activate(f.y, true));
    }
  }
  return raw;
}

__device__ __forceinline__ float AbsMax8(const uint4& raw) {
  const auto* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
  float m = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    m = fmaxf(m, fmaxf(fabsf(f.x), fabsf(f.y)));
  }
  return m;
}

__device__ __forceinline__ uint2 Quantize8(const uint4& raw, float inv_scale) {
  return PackE4m3x8(raw, inv_scale, __NV_SATFINITE);
}

__device__ __forceinline__ float BlockMax(float v) {
  __shared__ float warp_max[kThreads / 32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = v;
  __syncthreads();
  v = warp_max[0];
#pragma unroll
  for (int w = 1; w < kThreads / 32; ++w) v = fmaxf(v, warp_max[w]);
  return v;
}

// One block per row. Pass 1 loads the row once (activating it), keeps it in shared memory and reduces its
// absmax; pass 2 quantises from shared memory. Shared memory rather than registers keeps registers low, so
// up to 8 blocks (rows) per SM overlap their loads with other rows' reductions and stores.
__global__ void __launch_bounds__(kThreads) QuantizeKernel(Fp8RowPart a, Fp8RowPart b, int64_t S,
                                                           uint8_t* __restrict__ q, float* __restrict__ scale) {
  extern __shared__ uint4 row_smem[];  // the activated row, packed bf16
  const int64_t row = blockIdx.x;
  const int64_t bi = row / S, si = row % S;
  // the row's two parts; columns as 32-bit offsets (rows are at most kMaxCols wide)
  const auto* row_a = static_cast<const __nv_bfloat16*>(a.x) + bi * a.batch_stride + si * a.row_stride;
  const auto* row_b = b.cols ? static_cast<const __nv_bfloat16*>(b.x) + bi * b.batch_stride + si * b.row_stride
                             : row_a;
  const int cols_a = int(a.cols), cols = int(a.cols + b.cols), vecs = cols / 8;
  float amax = 0.f;
#pragma unroll 4
  for (int idx = threadIdx.x; idx < vecs; idx += kThreads) {
    const int c = idx * 8;
    const uint4 v = c < cols_a ? LoadActivated(row_a + c, a.gelu) : LoadActivated(row_b + (c - cols_a), b.gelu);
    row_smem[idx] = v;
    amax = fmaxf(amax, AbsMax8(v));
  }
  // BlockMax synchronises the block; each thread then reads back only the vectors it wrote
  const float s = fmaxf(BlockMax(amax), 1e-12f) * kInvE4m3Max;
  if (threadIdx.x == 0) scale[row] = s;
  const float inv = 1.f / s;  // correctly rounded, as torch's reciprocal()
  uint8_t* out = q + row * cols;
#pragma unroll 4
  for (int idx = threadIdx.x; idx < vecs; idx += kThreads) {
    *reinterpret_cast<uint2*>(out + idx * 8) = Quantize8(row_smem[idx], inv);
  }
}

bool Aligned8(int64_t v) { return v % 8 == 0; }
bool PartOk(const Fp8RowPart& p) {
  return p.cols == 0 || (p.x != nullptr && Aligned8(p.cols) && Aligned8(p.batch_stride) && Aligned8(p.row_stride) &&
                         (reinterpret_cast<uintptr_t>(p.x) & 15u) == 0);
}

}  // namespace

cudaError_t Fp8QuantizeRowsBf16(const Fp8RowPart& a, const Fp8RowPart& b, int64_t B, int64_t S, void* q,
                                float* scale, cudaStream_t stream) {
  const int64_t vecs = (a.cols + b.cols) / 8;
  if (B < 1 || S < 1 || B * S >= (int64_t(1) << 31) || a.cols < 8 || !PartOk(a) || !PartOk(b) || q == nullptr ||
      scale == nullptr || vecs * 8 > kMaxCols) {
    return cudaErrorInvalidValue;
  }
  QuantizeKernel<<<unsigned(B * S), kThreads, size_t(vecs) * sizeof(uint4), stream>>>(a, b, S,
                                                                                     static_cast<uint8_t*>(q), scale);
  return cudaGetLastError();
}

}  // namespace ditserve::kernels
