// RMSNorm + RoPE of attention heads; API and contract in rms_rope.cuh.
#include "rms_rope.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ditserve::kernels {
namespace {

constexpr int kWarps = 8;      // tokens per block (one warp each)
constexpr int kHeadBatch = 4;  // heads whose loads are issued before any of them is processed (ILP)

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float RoundBf16(float f) { return __bfloat162float(__float2bfloat16_rn(f)); }

// One warp per (b, s); lane owns the rotary pairs p = lane + 32 j (j < kPairs), so each 32-bit load or
// store of the warp covers 128 contiguous bytes and a pair never straddles lanes. cos/sin of the token
// stay in registers for all heads.
template <int kPairs>
__global__ void __launch_bounds__(kWarps * 32) RmsRopeKernel(RmsRopePart p1, RmsRopePart p2,
                                                             const float2* __restrict__ cos,
                                                             const float2* __restrict__ sin,
                                                             __nv_bfloat162* __restrict__ out, int64_t B, int H,
                                                             float inv_d, float eps) {
  constexpr int kD2 = kPairs * 32;  // D / 2
  const int64_t S = p1.rows + p2.rows;
  const int64_t token = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (token >= B * S) return;
  const int lane = threadIdx.x & 31;
  const int64_t b = token / S, s = token % S;
  const bool first = s < p1.rows;
  const RmsRopePart& p = first ? p1 : p2;
  const int64_t row = first ? s : s - p1.rows;
  const auto* x = reinterpret_cast<const __nv_bfloat162*>(static_cast<const __nv_bfloat16*>(p.x) +
                                                          b * p.batch_stride + row * p.row_stride);
  const auto* w = static_cast<const __nv_bfloat162*>(p.w);

  float2 c[kPairs], sn[kPairs], wt[kPairs];
#pragma unroll
  for (int j = 0; j < kPairs; ++j) {
    const int q = lane + 32 * j;
    c[j] = cos[s * kD2 + q];
    sn[j] = sin[s * kD2 + q];
    wt[j] = __bfloat1622float2(w[q]);
  }

  for (int h0 = 0; h0 < H; h0 += kHeadBatch) {
    __nv_bfloat162 v[kHeadBatch][kPairs];
#pragma unroll
    for (int u = 0; u < kHeadBatch; ++u)
      if (h0 + u < H)
#pragma unroll
        for (int j = 0; j < kPairs; ++j) v[u][j] = x[(h0 + u) * kD2 + lane + 32 * j];
#pragma unroll
    for (int u = 0; u < kHeadBatch; ++u) {
      if (h0 + u >= H) break;
      float2 f[kPairs];
      float sq = 0.0f;
#pragma unroll
      for (int j = 0; j < kPairs; ++j) {
        f[j] = __bfloat1622float2(v[u][j]);
        sq = fmaf(f[j].x, f[j].x, fmaf(f[j].y, f[j].y, sq));
      }
      const float r = rsqrtf(WarpSum(sq) * inv_d + eps);
      __nv_bfloat162* o = out + ((b * S + s) * H + h0 + u) * kD2;
#pragma unroll
      for (int j = 0; j < kPairs; ++j) {
        // the eager graph's roundings: x * rsqrt -> bf16, * weight -> bf16, rotation in fp32 -> bf16
        const float n0 = RoundBf16(RoundBf16(f[j].x * r) * wt[j].x);
        const float n1 = RoundBf16(RoundBf16(f[j].y * r) * wt[j].y);
        o[lane + 32 * j] = __floats2bfloat162_rn(n0 * c[j].x - n1 * sn[j].x, n1 * c[j].y + n0 * sn[j].y);
      }
    }
  }
}

bool Aligned4(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 3u) == 0; }

bool ValidPart(const RmsRopePart& p) {
  if (p.rows < 0) return false;
  if (p.rows == 0) return true;
  return p.x && p.w && Aligned4(p.x) && Aligned4(p.w) && p.batch_stride % 2 == 0 && p.row_stride % 2 == 0;
}

}  // namespace

cudaError_t RmsRopeBf16(const RmsRopePart& part1, const RmsRopePart& part2, const float* cos, const float* sin,
                        void* out, int64_t B, int64_t H, int64_t D, float eps, cudaStream_t stream) {
  if (B < 1 || H < 1 || H > 0x7fffffff || !(D == 64 || D == 128 || D == 256) || !(eps >= 0.0f)) {
    return cudaErrorInvalidValue;
  }
  if (!ValidPart(part1) || !ValidPart(part2)) return cudaErrorInvalidValue;
  const int64_t S = part1.rows + part2.rows;
  if (S == 0) return cudaSuccess;
  if (!cos || !sin || !out || (reinterpret_cast<uintptr_t>(cos) & 7u) || (reinterpret_cast<uintptr_t>(sin) & 7u) ||
      !Aligned4(out)) {
    return cudaErrorInvalidValue;
  }
  if (B * S >= (int64_t(1) << 31)) return cudaErrorInvalidValue;
  const unsigned blocks = unsigned((B * S + kWarps - 1) / kWarps);
  const auto* c = reinterpret_cast<const float2*>(cos);
  const auto* sn = reinterpret_cast<const float2*>(sin);
  auto* o = static_cast<__nv_bfloat162*>(out);
  const float inv_d = 1.0f / float(D);
  switch (D) {
    case 64: RmsRopeKernel<1><<<blocks, kWarps * 32, 0, stream>>>(part1, part2, c, sn, o, B, int(H), inv_d, eps); break;
    case 128: RmsRopeKernel<2><<<blocks, kWarps * 32, 0, stream>>>(part1, part2, c, sn, o, B, int(H), inv_d, eps); break;
    default: RmsRopeKernel<4><<<blocks, kWarps * 32, 0, stream>>>(part1, part2, c, sn, o, B, int(H), inv_d, eps); break;
  }
  return cudaGetLastError();
}

}  // namespace ditserve::kernels
