// Row-wise e4m3 quantisation; contract in fp8_quant.cuh.
#include "fp8_quant.cuh"

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ditserve::kernels {
namespace {

constexpr int kThreads = 256;  // one block per row
constexpr int kMaxVecs = 8;    // 16-byte vectors per thread held in registers: rows up to 256*8*8 = 16384 wide
constexpr float kE4m3Max = 448.f;
constexpr float kInvE4m3Max = 1.f / 448.f;  // scale = absmax * this (fp32 multiply; the references do the same)

// GELU(tanh) rounded to bf16 like the eager op's output, as x * sigmoid(2u) = 0.5 x (1 + tanh(u)): one
// exp and one fast division instead of tanhf, which made the kernel ALU-bound. Agrees with torch's
// formula to ~1e-6 relative, far below the bf16 rounding that follows.
__device__ __forceinline__ float Activate(float x, bool gelu) {
  if (!gelu) return x;
  constexpr float kBeta = 0.7978845608028654f, kKappa = 0.044715f;
  const float u = kBeta * (x + kKappa * x * x * x);
  return __bfloat162float(__float2bfloat16_rn(__fdividef(x, 1.f + __expf(-2.f * u))));
}

// Vector v (8 bf16 = 16 bytes) of row (b, s) of the concatenation [a, b], activated, as packed bf16.
__device__ __forceinline__ uint4 LoadActivated(const Fp8RowPart& a, const Fp8RowPart& b, int64_t bi, int64_t si,
                                               int64_t v) {
  const int64_t c = v * 8;
  const bool first = c < a.cols;  // fields picked one by one: no local copy of a part
  const auto* x = static_cast<const __nv_bfloat16*>(first ? a.x : b.x);
  const int64_t offset = bi * (first ? a.batch_stride : b.batch_stride) + si * (first ? a.row_stride : b.row_stride) +
                         (first ? c : c - a.cols);
  uint4 raw = __ldg(reinterpret_cast<const uint4*>(x + offset));
  if (first ? a.gelu : b.gelu) {
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
  const auto* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
  uint2 packed;
  auto* bytes = reinterpret_cast<uint8_t*>(&packed);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    bytes[2 * i] = __nv_cvt_float_to_fp8(f.x * inv_scale, __NV_SATFINITE, __NV_E4M3);
    bytes[2 * i + 1] = __nv_cvt_float_to_fp8(f.y * inv_scale, __NV_SATFINITE, __NV_E4M3);
  }
  return packed;
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

// The row's (activated) values stay in registers between the absmax and the quantisation: one read of the
// input, all of a thread's loads in flight at once.
template <int kVecs>
__global__ void __launch_bounds__(kThreads) QuantizeKernel(Fp8RowPart a, Fp8RowPart b, int64_t S,
                                                           uint8_t* __restrict__ q, float* __restrict__ scale) {
  const int64_t row = blockIdx.x;
  const int64_t bi = row / S, si = row % S;
  const int64_t cols = a.cols + b.cols, vecs = cols / 8;
  uint4 v[kVecs];
  float amax = 0.f;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t idx = threadIdx.x + int64_t(j) * kThreads;
    if (idx < vecs) {
      v[j] = LoadActivated(a, b, bi, si, idx);
      amax = fmaxf(amax, AbsMax8(v[j]));
    }
  }
  const float s = fmaxf(BlockMax(amax), 1e-12f) * kInvE4m3Max;
  if (threadIdx.x == 0) scale[row] = s;
  const float inv = 1.f / s;  // correctly rounded, as torch's reciprocal()
  uint8_t* out = q + row * cols;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t idx = threadIdx.x + int64_t(j) * kThreads;
    if (idx < vecs) *reinterpret_cast<uint2*>(out + idx * 8) = Quantize8(v[j], inv);
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
      scale == nullptr || vecs > int64_t(kThreads) * kMaxVecs) {
    return cudaErrorInvalidValue;
  }
  const dim3 grid(unsigned(B * S));
  auto* qb = static_cast<uint8_t*>(q);
  if (vecs <= kThreads * 2) {
    QuantizeKernel<2><<<grid, kThreads, 0, stream>>>(a, b, S, qb, scale);
  } else if (vecs <= kThreads * 4) {
    QuantizeKernel<4><<<grid, kThreads, 0, stream>>>(a, b, S, qb, scale);
  } else {
    QuantizeKernel<kMaxVecs><<<grid, kThreads, 0, stream>>>(a, b, S, qb, scale);
  }
  return cudaGetLastError();
}

}  // namespace ditserve::kernels
