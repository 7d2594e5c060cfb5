// Per-tensor e4m3 scaling; contract in fp8_scale.cuh.
#include "fp8_scale.cuh"

#include "fp8_pack.cuh"

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ditserve::kernels {
namespace {

constexpr int kThreads = 256;

struct Shape {
  int h, s, d8;  // H, S and D / 8 (8 elements per thread and step); 32-bit: B*H*S*D/8 < 2^31 is required
};

// The offsets (in elements) of 8-element group i of the logical [B, H, S, D] tensor in x and out.
__device__ __forceinline__ void Offsets(int i, const Shape& n, const Strided4d& x, const Strided4d& out,
                                        int64_t& xo, int64_t& oo) {
  const int c = (i % n.d8) * 8;
  int r = i / n.d8;
  const int s = r % n.s;
  r /= n.s;
  const int h = r % n.h, b = r / n.h;
  xo = b * x.sb + h * x.sh + s * x.ss + c;
  oo = b * out.sb + h * out.sh + s * out.ss + c;
}

// x and out as [B, H, S, D] views; Op converts one 8-element group (Bf16ToE4m3 / E4m3ToBf16 below).
template <typename Op>
__global__ void ScaleKernel(Strided4d x, Strided4d out, Shape n, int groups, const float* scale) {
  const float s = *scale;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < groups;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t xo, oo;
    Offsets(static_cast<int>(i), n, x, out, xo, oo);  // i < groups < 2^31: 32-bit index arithmetic
    Op::Apply(x.p, xo, out.p, oo, s);
  }
}

struct Bf16ToE4m3 {
  __device__ static void Apply(const void* x, int64_t xo, void* out, int64_t oo, float s) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(static_cast<const __nv_bfloat16*>(x) + xo));
    *reinterpret_cast<uint2*>(static_cast<__nv_fp8_storage_t*>(out) + oo) = PackE4m3x8(raw, s, __NV_NOSAT);
  }
};

struct E4m3ToBf16 {
  __device__ static void Apply(const void* x, int64_t xo, void* out, int64_t oo, float s) {
    const uint2 packed = __ldg(reinterpret_cast<const uint2*>(static_cast<const __nv_fp8_storage_t*>(x) + xo));
    *reinterpret_cast<uint4*>(static_cast<__nv_bfloat16*>(out) + oo) = UnpackE4m3x8(packed, s);
  }
};

bool Aligned(const void* p, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0; }

bool Valid(const Strided4d& t, uintptr_t align) {
  return t.p != nullptr && Aligned(t.p, align) && t.sb % 8 == 0 && t.sh % 8 == 0 && t.ss % 8 == 0;
}

template <typename Op>
cudaError_t Launch(const Strided4d& x, uintptr_t x_align, const Strided4d& out, uintptr_t out_align,
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
  const Shape n{static_cast<int>(H), static_cast<int>(S), static_cast<int>(D / 8)};
  ScaleKernel<Op><<<grid, kThreads, 0, stream>>>(x, out, n, static_cast<int>(groups), s);
  return cudaGetLastError();
}

}  // namespace

cudaError_t Bf16ToE4m3Scaled(const Strided4d& x, const Strided4d& out, int64_t B, int64_t H, int64_t S, int64_t D,
                             const float* s, cudaStream_t stream) {
  return Launch<Bf16ToE4m3>(x, 16, out, 8, B, H, S, D, s, stream);
}

cudaError_t E4m3ToBf16Scaled(const Strided4d& x, const Strided4d& out, int64_t B, int64_t H, int64_t S, int64_t D,
                             const float* s, cudaStream_t stream) {
  return Launch<E4m3ToBf16>(x, 8, out, 16, B, H, S, D, s, stream);
}

}  // namespace ditserve::kernels
