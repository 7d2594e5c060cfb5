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

enum class Norm { kRmsTwoRoundings, kRmsOneRounding, kLayer };
enum class Table { kShared, kPerHeadPairs };

struct Rope {
  const void* cos = nullptr;  // kShared: float2 [rows, D/2] (D values, pairs repeat-interleaved);
  const void* sin = nullptr;  // kPerHeadPairs: float [rows, H, D/2] (one angle per pair and head)
  int64_t begin = 0, end = 0;  // rotated rows [begin, end) of the B*S sequence; table row = s - begin
};

// One warp per (b, s); lane owns the rotary pairs p = lane + 32 j (j < kPairs), so each 32-bit load or
// store of the warp covers 128 contiguous bytes and a pair never straddles lanes. Shared cos/sin of the
// token stay in registers for all heads. The values are in registers, so LayerNorm's two-pass mean and
// variance cost no memory traffic.
template <int kPairs, Norm kNorm, Table kTable>
__global__ void __launch_bounds__(kWarps * 32) HeadNormRopeKernel(RmsRopePart p1, RmsRopePart p2,
                                                                  const __nv_bfloat162* __restrict__ bias, Rope rope,
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
  const bool rotate = s >= rope.begin && s < rope.end;
  const int64_t trow = s - rope.begin;

  float2 c[kPairs], sn[kPairs], wt[kPairs], bt[kPairs];
#pragma unroll
  for (int j = 0; j < kPairs; ++j) {
    const int q = lane + 32 * j;
    if (kTable == Table::kShared && rotate) {
      c[j] = static_cast<const float2*>(rope.cos)[trow * kD2 + q];
      sn[j] = static_cast<const float2*>(rope.sin)[trow * kD2 + q];
    }
    wt[j] = __bfloat1622float2(w[q]);
    if (kNorm == Norm::kLayer) bt[j] = __bfloat1622float2(bias[q]);
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
      float mean = 0.0f;
      if (kNorm == Norm::kLayer) {
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < kPairs; ++j) {
          f[j] = __bfloat1622float2(v[u][j]);
          sum += f[j].x + f[j].y;
        }
        mean = WarpSum(sum) * inv_d;
      }
      float sq = 0.0f;
#pragma unroll
      for (int j = 0; j < kPairs; ++j) {
        f[j] = __bfloat1622float2(v[u][j]);
        f[j].x -= mean;
        f[j].y -= mean;
        sq = fmaf(f[j].x, f[j].x, fmaf(f[j].y, f[j].y, sq));
      }
      const float r = rsqrtf(WarpSum(sq) * inv_d + eps);
      __nv_bfloat162* o = out + ((b * S + s) * H + h0 + u) * kD2;
#pragma unroll
      for (int j = 0; j < kPairs; ++j) {
        float n0, n1;
        if (kNorm == Norm::kLayer) {  // ATen's layer_norm: w * (rstd * (x - mean)) + b in fp32, rounded once
          n0 = RoundBf16(fmaf(wt[j].x, r * f[j].x, bt[j].x));
          n1 = RoundBf16(fmaf(wt[j].y, r * f[j].y, bt[j].y));
        } else if (kNorm == Norm::kRmsOneRounding) {  // (x * rsqrt * weight) in fp32 -> bf16
          n0 = RoundBf16(f[j].x * r * wt[j].x);
          n1 = RoundBf16(f[j].y * r * wt[j].y);
        } else {  // x * rsqrt -> bf16, * weight -> bf16
          n0 = RoundBf16(RoundBf16(f[j].x * r) * wt[j].x);
          n1 = RoundBf16(RoundBf16(f[j].y * r) * wt[j].y);
        }
        if (!rotate) {
          o[lane + 32 * j] = __floats2bfloat162_rn(n0, n1);
          continue;
        }
        float2 cj, sj;
        if (kTable == Table::kShared) {
          cj = c[j];
          sj = sn[j];
        } else {
          const int64_t t = (trow * H + h0 + u) * kD2 + lane + 32 * j;
          cj.x = cj.y = static_cast<const float*>(rope.cos)[t];
          sj.x = sj.y = static_cast<const float*>(rope.sin)[t];
        }
        // the rotation in fp32 -> bf16
        o[lane + 32 * j] = __floats2bfloat162_rn(n0 * cj.x - n1 * sj.x, n1 * cj.y + n0 * sj.y);
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

template <Norm kNorm, Table kTable>
cudaError_t Launch(const RmsRopePart& part1, const RmsRopePart& part2, const void* bias, const Rope& rope,
                   void* out, int64_t B, int64_t H, int64_t D, float eps, cudaStream_t stream) {
  if (B < 1 || H < 1 || H > 0x7fffffff || !(D == 64 || D == 128 || D == 256) || !(eps >= 0.0f)) {
    return cudaErrorInvalidValue;
  }
  if (!ValidPart(part1) || !ValidPart(part2)) return cudaErrorInvalidValue;
  const int64_t S = part1.rows + part2.rows;
  if (rope.begin < 0 || rope.end < rope.begin || rope.end > S) return cudaErrorInvalidValue;
  if (kNorm == Norm::kLayer && (!bias || !Aligned4(bias))) return cudaErrorInvalidValue;
  if (S == 0) return cudaSuccess;
  const uintptr_t table_align = kTable == Table::kShared ? 7u : 3u;
  if (!out || !Aligned4(out) ||
      (rope.end > rope.begin && (!rope.cos || !rope.sin || (reinterpret_cast<uintptr_t>(rope.cos) & table_align) ||
                                 (reinterpret_cast<uintptr_t>(rope.sin) & table_align)))) {
    return cudaErrorInvalidValue;
  }
  if (B * S >= (int64_t(1) << 31)) return cudaErrorInvalidValue;
  const unsigned blocks = unsigned((B * S + kWarps - 1) / kWarps);
  const auto* bs = static_cast<const __nv_bfloat162*>(bias);
  auto* o = static_cast<__nv_bfloat162*>(out);
  const float inv_d = 1.0f / float(D);
  switch (D) {
    case 64:
      HeadNormRopeKernel<1, kNorm, kTable><<<blocks, kWarps * 32, 0, stream>>>(part1, part2, bs, rope, o, B, int(H),
                                                                               inv_d, eps);
      break;
    case 128:
      HeadNormRopeKernel<2, kNorm, kTable><<<blocks, kWarps * 32, 0, stream>>>(part1, part2, bs, rope, o, B, int(H),
                                                                               inv_d, eps);
      break;
    default:
      HeadNormRopeKernel<4, kNorm, kTable><<<blocks, kWarps * 32, 0, stream>>>(part1, part2, bs, rope, o, B, int(H),
                                                                               inv_d, eps);
      break;
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t RmsRopeBf16(const RmsRopePart& part1, const RmsRopePart& part2, const float* cos, const float* sin,
                        void* out, int64_t B, int64_t H, int64_t D, float eps, cudaStream_t stream) {
  if (!cos || !sin) return cudaErrorInvalidValue;
  return Launch<Norm::kRmsTwoRoundings, Table::kShared>(part1, part2, nullptr,
                                                        Rope{cos, sin, 0, part1.rows + part2.rows}, out, B, H, D,
                                                        eps, stream);
}

cudaError_t LayerNormRopeBf16(const RmsRopePart& part, const void* bias, int64_t rope_from, const float* cos,
                              const float* sin, void* out, int64_t B, int64_t H, int64_t D, float eps,
                              cudaStream_t stream) {
  return Launch<Norm::kLayer, Table::kShared>(part, RmsRopePart{}, bias, Rope{cos, sin, rope_from, part.rows}, out,
                                              B, H, D, eps, stream);
}

cudaError_t RmsRopePerHeadBf16(const RmsRopePart& part1, const RmsRopePart& part2, const float* cos,
                               const float* sin, void* out, int64_t B, int64_t H, int64_t D, float eps,
                               cudaStream_t stream) {
  return Launch<Norm::kRmsOneRounding, Table::kPerHeadPairs>(part1, part2, nullptr, Rope{cos, sin, 0, part1.rows},
                                                             out, B, H, D, eps, stream);
}

}  // namespace ditserve::kernels
