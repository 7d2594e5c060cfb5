// Per-tensor FP8 (e4m3) scaling of attention operands (torch-free host API; fp8_scale.cu), for
// engine/runtime/fp8_attention.cc: one pass each way instead of torch's multiply-then-cast (two passes and a
// temporary). With s a power of two read from the device (computed there: no host sync, graph-capturable):
//   Bf16ToE4m3Scaled:  out = e4m3_rn(float(x) * s), not saturating  == torch's (x * s).to(float8_e4m3fn)
//   E4m3ToBf16Scaled:  out = bf16(float(x) * s)                       == torch's x.to(bfloat16) * s
// (equal bit for bit: a power-of-two product is exact in fp32 and bf16). The caller picks s so that
// |x| * s <= 448; beyond it the non-saturating cast gives NaN, as torch's does.
// Tensors are [B, H, S, D] views with D contiguous: element (b, h, s, d) at p[b*sb + h*sh + s*ss + d].
#pragma once

#include <cstdint>

#include <driver_types.h>

typedef struct CUstream_st* cudaStream_t;

namespace ditserve::kernels {

struct Strided4d {
  void* p = nullptr;
  int64_t sb = 0, sh = 0, ss = 0;  // strides of B, H, S in elements (D's is 1)
};

// Requirements (else cudaErrorInvalidValue, nothing launched): D a multiple of 8; every stride a multiple of 8
// elements; bf16 pointers 16-byte and e4m3 pointers 8-byte aligned; B*H*S*D/8 < 2^31. B, H, S or D of 0: nothing.
cudaError_t Bf16ToE4m3Scaled(const Strided4d& x, const Strided4d& out, int64_t B, int64_t H, int64_t S, int64_t D,
                             const float* s, cudaStream_t stream);
cudaError_t E4m3ToBf16Scaled(const Strided4d& x, const Strided4d& out, int64_t B, int64_t H, int64_t S, int64_t D,
                             const float* s, cudaStream_t stream);

}  // namespace ditserve::kernels
