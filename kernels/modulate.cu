// adaLN modulate (+ optional fused LayerNorm) and gated-residual kernels; API and contract in modulate.cuh.
#include "modulate.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "bf16_pack.cuh"

namespace ditserve::kernels {
namespace {

constexpr int kRowsPerBlock = 4;  // rows of one batch handled by each thread of the modulate kernel

using kernels::Pack;  // the 8 x bf16 overloads, beside the fp32 ones below
using kernels::Unpack;

__device__ __forceinline__ void Unpack(const float4& v, float (&f)[4]) {
  f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
}
__device__ __forceinline__ float4 Pack(const float (&f)[4]) { return make_float4(f[0], f[1], f[2], f[3]); }

template <typename Vec> struct VecTraits;
template <> struct VecTraits<uint4> { static constexpr int kElems = 8; };   // 8 x bf16
template <> struct VecTraits<float4> { static constexpr int kElems = 4; };  // 4 x fp32

// grid.x = B * row_chunks (kRowsPerBlock rows each), grid.y * blockDim.x >= nv (vectors per row).
// Each thread keeps (1 + scale, shift) of its column vector in registers and streams its rows; all row
// loads are issued before any store (ILP; also keeps in-place y == x correct: one thread owns an element).
template <typename Vec>
__global__ void __launch_bounds__(512) ModulateKernel(const Vec* x, const Vec* scale, const Vec* shift, Vec* y,
                                                      int64_t S, int64_t nv, int64_t row_chunks) {
  constexpr int kE = VecTraits<Vec>::kElems;
  const int64_t c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= nv) return;
  const int64_t b = blockIdx.x / row_chunks;
  const int64_t s0 = (blockIdx.x % row_chunks) * kRowsPerBlock;
  const int rows = int(S - s0 < kRowsPerBlock ? S - s0 : kRowsPerBlock);

  float sc[kE], sh[kE];
  Unpack(scale[b * nv + c], sc);
  Unpack(shift[b * nv + c], sh);
#pragma unroll
  for (int i = 0; i < kE; ++i) sc[i] += 1.0f;

  const int64_t base = (b * S + s0) * nv + c;
  Vec v[kRowsPerBlock];
#pragma unroll
  for (int r = 0; r < kRowsPerBlock; ++r)
    if (r < rows) v[r] = x[base + r * nv];
#pragma unroll
  for (int r = 0; r < kRowsPerBlock; ++r) {
    if (r < rows) {
      float f[kE];
      Unpack(v[r], f);
#pragma unroll
      for (int i = 0; i < kE; ++i) f[i] = fmaf(f[i], sc[i], sh[i]);
      y[base + r * nv] = Pack(f);
    }
  }
}

// Gated residual x + gate * y, same grid as ModulateKernel: each thread keeps its column vector of gate in
// registers and streams kRowsPerBlock rows of x and y, all loads before any store (out may alias x).
__global__ void __launch_bounds__(512) GatedResidualKernel(const uint4* x, const uint4* gate, const uint4* y,
                                                           int64_t y_batch_v, uint4* out, int64_t S, int64_t nv,
                                                           int64_t row_chunks) {
  const int64_t c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= nv) return;
  const int64_t b = blockIdx.x / row_chunks;
  const int64_t s0 = (blockIdx.x % row_chunks) * kRowsPerBlock;
  const int rows = int(S - s0 < kRowsPerBlock ? S - s0 : kRowsPerBlock);

  float g[8];
  Unpack(gate[b * nv + c], g);
  const int64_t base = (b * S + s0) * nv + c;
  const int64_t y_base = b * y_batch_v + s0 * nv + c;
  uint4 vx[kRowsPerBlock], vy[kRowsPerBlock];
#pragma unroll
  for (int r = 0; r < kRowsPerBlock; ++r) {
    if (r < rows) {
      vx[r] = x[base + r * nv];
      vy[r] = y[y_base + r * nv];
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerBlock; ++r) {
    if (r < rows) {
      float fx[8], fy[8];
      Unpack(vx[r], fx);
      Unpack(vy[r], fy);
#pragma unroll
      for (int i = 0; i < 8; ++i) fx[i] = fmaf(g[i], fy[i], fx[i]);
      out[base + r * nv] = Pack(fx);
    }
  }
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32); every thread gets the result. `buf` holds 33 floats.
// Safe to call back to back with the same buffer (see the barrier argument in the body).
__device__ __forceinline__ float BlockSum(float v, float* buf) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  v = WarpSum(v);
  if (lane == 0) buf[warp] = v;  // earlier readers of buf[0..31] (warp 0) finished before the last barrier
  __syncthreads();
  if (warp == 0) {
    float t = lane < int(blockDim.x >> 5) ? buf[lane] : 0.0f;
    t = WarpSum(t);
    if (lane == 0) buf[32] = t;  // earlier readers of buf[32] finished before the barrier above
  }
  __syncthreads();
  return buf[32];
}

// One block per row; each thread holds kVecs 16-byte vectors of the row (raw bf16, 4 registers each).
// Two-pass statistics from registers: mean, then the centred sum of squares (no cancellation).
// Blocks have <= 256 threads (kVecs <= 8, D <= 16384): no register spills at any kVecs.
template <int kVecs>
__global__ void __launch_bounds__(256) LayerNormModulateKernel(const uint4* x, const uint4* scale,
                                                                const uint4* shift, uint4* y, int64_t S,
                                                                int nv, float inv_d, float eps) {
  __shared__ float buf[33];
  const int64_t row = blockIdx.x;
  const int64_t b = row / S;
  const uint4* xr = x + row * nv;

  uint4 v[kVecs];
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int c = threadIdx.x + k * blockDim.x;
    if (c < nv) {
      v[k] = xr[c];
      float f[8];
      Unpack(v[k], f);
#pragma unroll
      for (int i = 0; i < 8; ++i) sum += f[i];
    }
  }
  const float mean = BlockSum(sum, buf) * inv_d;

  float sq = 0.0f;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int c = threadIdx.x + k * blockDim.x;
    if (c < nv) {
      float f[8];
      Unpack(v[k], f);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float d = f[i] - mean;
        sq = fmaf(d, d, sq);
      }
    }
  }
  const float rstd = rsqrtf(BlockSum(sq, buf) * inv_d + eps);

  uint4* yr = y + row * nv;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int c = threadIdx.x + k * blockDim.x;
    if (c < nv) {
      float f[8], sc[8], sh[8];
      Unpack(v[k], f);
      Unpack(scale[b * nv + c], sc);
      Unpack(shift[b * nv + c], sh);
#pragma unroll
      for (int i = 0; i < 8; ++i) f[i] = fmaf((f[i] - mean) * rstd, 1.0f + sc[i], sh[i]);
      yr[c] = Pack(f);
    }
  }
}

// Mochi's modulated RMSNorm, one block per row like LayerNormModulateKernel: n = bf16(x * rsqrt(mean(x^2) + eps)
// * scale) with scale fp32 [B, D]; with a residual, out = bf16(residual + n) (the eager graph's two roundings).
template <int kVecs>
__global__ void __launch_bounds__(256) RmsScaleKernel(const uint4* x, const float4* scale, const uint4* residual,
                                                       uint4* y, int64_t S, int nv, float inv_d, float eps) {
  __shared__ float buf[33];
  const int64_t row = blockIdx.x;
  const int64_t b = row / S;
  const uint4* xr = x + row * nv;

  uint4 v[kVecs];
  float sq = 0.0f;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int c = threadIdx.x + k * blockDim.x;
    if (c < nv) {
      v[k] = xr[c];
      float f[8];
      Unpack(v[k], f);
#pragma unroll
      for (int i = 0; i < 8; ++i) sq = fmaf(f[i], f[i], sq);
    }
  }
  const float r = rsqrtf(BlockSum(sq, buf) * inv_d + eps);

  uint4* yr = y + row * nv;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int c = threadIdx.x + k * blockDim.x;
    if (c < nv) {
      float f[8];
      Unpack(v[k], f);
      const float4 s0 = scale[(b * nv + c) * 2], s1 = scale[(b * nv + c) * 2 + 1];
      const float sc[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i) f[i] = f[i] * r * sc[i];
      if (residual) {
        float res[8];
        Unpack(residual[row * nv + c], res);
#pragma unroll
        for (int i = 0; i < 8; ++i) f[i] = res[i] + __bfloat162float(__float2bfloat16_rn(f[i]));
      }
      yr[c] = Pack(f);
    }
  }
}

// The one-block-per-row kernels' shape (LayerNormModulateKernel, RmsScaleKernel) for nv 16-byte vectors per row:
// returns the vectors per thread, the smallest power of two keeping the block at <= 256 threads (D <= 16384 =>
// <= 8), and the block's thread count.
int RowBlock(int nv, unsigned* threads) {
  int k = 1;
  while ((nv + k - 1) / k > 256) k *= 2;
  *threads = unsigned(((nv + k - 1) / k + 31) / 32 * 32);
  return k;
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ModulateKernel's / GatedResidualKernel's grid for nv vectors per row; false if it does not fit.
bool RowGrid(int64_t B, int64_t S, int64_t nv, dim3* grid, unsigned* threads, int64_t* row_chunks) {
  const int64_t col_blocks = (nv + 511) / 512;
  *threads = unsigned(((nv + col_blocks - 1) / col_blocks + 31) / 32 * 32);  // <= 512
  *row_chunks = (S + kRowsPerBlock - 1) / kRowsPerBlock;
  if (col_blocks > 65535 || B * *row_chunks > 0x7fffffff) return false;
  *grid = dim3(unsigned(B * *row_chunks), unsigned(col_blocks));
  return true;
}

template <typename Vec>
cudaError_t LaunchModulate(const void* x, const void* scale, const void* shift, void* y, int64_t B, int64_t S,
                           int64_t D, cudaStream_t stream) {
  constexpr int kE = VecTraits<Vec>::kElems;
  if (B < 0 || S < 0 || D < 0 || D % kE != 0) return cudaErrorInvalidValue;
  if (B == 0 || S == 0 || D == 0) return cudaSuccess;
  if (!x || !scale || !shift || !y) return cudaErrorInvalidValue;
  if (!Aligned16(x) || !Aligned16(scale) || !Aligned16(shift) || !Aligned16(y)) return cudaErrorInvalidValue;

  const int64_t nv = D / kE;
  dim3 grid;
  unsigned threads;
  int64_t row_chunks;
  if (!RowGrid(B, S, nv, &grid, &threads, &row_chunks)) return cudaErrorInvalidValue;
  ModulateKernel<Vec><<<grid, threads, 0, stream>>>(
      static_cast<const Vec*>(x), static_cast<const Vec*>(scale), static_cast<const Vec*>(shift),
      static_cast<Vec*>(y), S, nv, row_chunks);
  return cudaGetLastError();
}

}  // namespace

cudaError_t ModulateBf16(const void* x, const void* scale, const void* shift, void* y, int64_t B, int64_t S,
                         int64_t D, cudaStream_t stream) {
  return LaunchModulate<uint4>(x, scale, shift, y, B, S, D, stream);
}

cudaError_t ModulateF32(const float* x, const float* scale, const float* shift, float* y, int64_t B,
                        int64_t S, int64_t D, cudaStream_t stream) {
  return LaunchModulate<float4>(x, scale, shift, y, B, S, D, stream);
}

cudaError_t GatedResidualBf16(const void* x, const void* gate, const void* y, int64_t y_batch_stride, void* out,
                              int64_t B, int64_t S, int64_t D, cudaStream_t stream) {
  if (B < 0 || S < 0 || D < 0 || D % 8 != 0 || y_batch_stride % 8 != 0) return cudaErrorInvalidValue;
  if (B > 1 && y_batch_stride < S * D) return cudaErrorInvalidValue;
  if (B == 0 || S == 0 || D == 0) return cudaSuccess;
  if (!x || !gate || !y || !out) return cudaErrorInvalidValue;
  if (!Aligned16(x) || !Aligned16(gate) || !Aligned16(y) || !Aligned16(out)) return cudaErrorInvalidValue;
  dim3 grid;
  unsigned threads;
  int64_t row_chunks;
  if (!RowGrid(B, S, D / 8, &grid, &threads, &row_chunks)) return cudaErrorInvalidValue;
  GatedResidualKernel<<<grid, threads, 0, stream>>>(static_cast<const uint4*>(x), static_cast<const uint4*>(gate),
                                                    static_cast<const uint4*>(y), y_batch_stride / 8,
                                                    static_cast<uint4*>(out), S, D / 8, row_chunks);
  return cudaGetLastError();
}

cudaError_t LayerNormModulateBf16(const void* x, const void* scale, const void* shift, void* y, int64_t B,
                                  int64_t S, int64_t D, float eps, cudaStream_t stream) {
  if (B < 0 || S < 0 || D < 0 || D % 8 != 0 || D > 16384 || !(eps >= 0.0f)) return cudaErrorInvalidValue;
  if (B == 0 || S == 0 || D == 0) return cudaSuccess;
  if (!x || !scale || !shift || !y) return cudaErrorInvalidValue;
  if (!Aligned16(x) || !Aligned16(scale) || !Aligned16(shift) || !Aligned16(y)) return cudaErrorInvalidValue;
  if (B * S > 0x7fffffff) return cudaErrorInvalidValue;

  const int nv = int(D / 8);
  unsigned threads;
  const int k = RowBlock(nv, &threads);
  const unsigned rows = unsigned(B * S);
  const auto* xv = static_cast<const uint4*>(x);
  const auto* sv = static_cast<const uint4*>(scale);
  const auto* hv = static_cast<const uint4*>(shift);
  auto* yv = static_cast<uint4*>(y);
  const float inv_d = 1.0f / float(D);
  switch (k) {
    case 1: LayerNormModulateKernel<1><<<rows, threads, 0, stream>>>(xv, sv, hv, yv, S, nv, inv_d, eps); break;
    case 2: LayerNormModulateKernel<2><<<rows, threads, 0, stream>>>(xv, sv, hv, yv, S, nv, inv_d, eps); break;
    case 4: LayerNormModulateKernel<4><<<rows, threads, 0, stream>>>(xv, sv, hv, yv, S, nv, inv_d, eps); break;
    default: LayerNormModulateKernel<8><<<rows, threads, 0, stream>>>(xv, sv, hv, yv, S, nv, inv_d, eps); break;
  }
  return cudaGetLastError();
}

cudaError_t RmsScaleBf16(const void* x, const float* scale, const void* residual, void* y, int64_t B, int64_t S,
                         int64_t D, float eps, cudaStream_t stream) {
  if (B < 0 || S < 0 || D < 0 || D % 8 != 0 || D > 16384 || !(eps >= 0.0f)) return cudaErrorInvalidValue;
  if (B == 0 || S == 0 || D == 0) return cudaSuccess;
  if (!x || !scale || !y) return cudaErrorInvalidValue;
  if (!Aligned16(x) || !Aligned16(scale) || !Aligned16(y) || (residual && !Aligned16(residual))) {
    return cudaErrorInvalidValue;
  }
  if (B * S > 0x7fffffff) return cudaErrorInvalidValue;

  const int nv = int(D / 8);
  unsigned threads;
  const int k = RowBlock(nv, &threads);
  const unsigned rows = unsigned(B * S);
  const auto* xv = static_cast<const uint4*>(x);
  const auto* sv = reinterpret_cast<const float4*>(scale);
  const auto* rv = static_cast<const uint4*>(residual);
  auto* yv = static_cast<uint4*>(y);
  const float inv_d = 1.0f / float(D);
  switch (k) {
    case 1: RmsScaleKernel<1><<<rows, threads, 0, stream>>>(xv, sv, rv, yv, S, nv, inv_d, eps); break;
    case 2: RmsScaleKernel<2><<<rows, threads, 0, stream>>>(xv, sv, rv, yv, S, nv, inv_d, eps); break;
    case 4: RmsScaleKernel<4><<<rows, threads, 0, stream>>>(xv, sv, rv, yv, S, nv, inv_d, eps); break;
    default: RmsScaleKernel<8><<<rows, threads, 0, stream>>>(xv, sv, rv, yv, S, nv, inv_d, eps); break;
  }
  return cudaGetLastError();
}

}  // namespace ditserve::kernels
