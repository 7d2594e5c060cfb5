// Per-tensor e4m3 scaling; contract in fp8_scale.cuh.
#include "fp8_scale.cuh"

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ditserve::kernels {
namespace {

constexpr int kThreads = 256;

struct Shape {
  int64_t h, s, d8;  // H, S and D / 8 (8 elements per thread and step)
};

// The offsets (in elements) of 8-element group i of the logical [B, H, S, D] tensor in x and out.
__device__ __forceinline__ void Offsets(int64_t i, const Shape& n, const Strided4d& x, const Strided4d& out,
                                        int64_t& xo, int64_t& oo) {
  const int64_t c = (i % n.d8) * 8;
  int64_t r = i / n.d8;
  const int64_t s = r % n.s;
  r /= n.s;
  const int64_t h = r % n.h, b = r / n.h;
  xo = b * x.sb + h * x.sh + s * x.ss + c;
  oo = b * out.sb + h * out.sh + s * out.ss + c;
}

__global__ void ToE4m3Kernel(Strided4d x, Strided4d out, Shape n, int64_t groups, const float* scale) {
  const float s = *scale;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < groups;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t xo, oo;
    Offsets(i, n, x, out, xo, oo);
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(static_cast<const __nv_bfloat16*>(x.p) + xo));
    const auto* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
    uint2 packed;
    auto* pairs = reinterpret_cast<__nv_fp8x2_storage_t*>(&packed);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = __bfloat1622float2(h[j]);
      pairs[j] = __nv_cvt_float2_to_fp8x2(make_float2(f.x * s, f.y * s), __NV_NOSAT, __NV_E4M3);
    }
    *reinterpret_cast<uint2*>(static_cast<__nv_fp8_storage_t*>(out.p) + oo) = packed;
  }
}

__global__ void ToBf16Kernel(Strided4d x, Strided4d out, Shape n, int64_t groups, const float* scale) {
  const float s = *scale;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < groups;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t xo, oo;
    Offsets(i, n, x, out, xo, oo);
    const uint2 packed = __ldg(reinterpret_cast<const uint2*>(static_cast<const __nv_fp8_storage_t*>(x.p) + xo));
    const auto* pairs = reinterpret_cast<const __nv_fp8x2_storage_t*>(&packed);
    uint4 raw;
    auto* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const __half2_raw hr = __nv_cvt_fp8x2_to_halfraw2(pairs[j], __NV_E4M3);  // exact: e4m3 is within fp16
      const float2 f = __half22float2(__half2(hr));
      h[j] = __floats2bfloat162_rn(f.x * s, f.y * s);
    }
    *reinterpret_cast<uint4*>(static_cast<__nv_bfloat16*>(out.p) + oo) = raw;
  }
}

bool Aligned(const void* p, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0; }

bool Valid(const Strided4d& t, uintptr_t align) {
  return t.p != nullptr && Aligned(t.p, align) && t.sb % 8 == 0 && t.sh % 8 == 0 && t.ss % 8 == 0;
}

template <typename Kernel>
cudaError_t Launch(Kernel kernel, const Strided4d& x, uintptr_t x_align, const Strided4d& out, uintptr_t out_align,
                   int64_t B, int64_t H, int64_t S, int64_t D, const float* s, cudaStream_t stream) {
  if (B < 0 || H < 0 || S < 0 || D < 0 || D % 8 != 0) return cudaErrorInvalidValue;
  if (B == 0 || H == 0 || S == 0 || D == 0) return cudaSuccess;
  const int64_t groups = B * H * S * (D / 8);
  if (groups >= (int64_t{1} << 31) || s == nullptr || !Valid(x, x_align) || !Valid(out, out_align)) {
    return cudaErrorInvalidValue;
  }
  int device = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (e != cudaSuccess) return e;
  const int64_t blocks = (groups + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(blocks < int64_t{sms} * 16 ? blocks : int64_t{sms} * 16);  // grid-stride
  kernel<<<grid, kThreads, 0, stream>>>(x, out, Shape{H, S, D / 8}, groups, s);
  return cudaGetLastError();
}

}  // namespace

cudaError_t Bf16ToE4m3Scaled(const Strided4d& x, const Strided4d& out, int64_t B, int64_t H, int64_t S, int64_t D,
                             const float* s, cudaStream_t stream) {
  return Launch(ToE4m3Kernel, x, 16, out, 8, B, H, S, D, s, stream);
}

cudaError_t E4m3ToBf16Scaled(const Strided4d& x, const Strided4d& out, int64_t B, int64_t H, int64_t S, int64_t D,
                             const float* s, cudaStream_t stream) {
  return Launch(ToBf16Kernel, x, 8, out, 16, B, H, S, D, s, stream);
}

}  // namespace ditserve::kernels
