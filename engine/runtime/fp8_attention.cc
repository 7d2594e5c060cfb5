// FP8 attention; contract in fp8_attention.h.
#include "engine/runtime/fp8_attention.h"

#include <cmath>

#include <ATen/ATen.h>

#include "engine/runtime/cudnn_fp8_sdpa.h"

#ifdef DITSERVE_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>

#include "fp8_scale.cuh"
#endif

namespace ditserve::runtime {
namespace {

constexpr double kE4m3Max = 448.0;
constexpr double kTiny = 1e-30;

// [3]: the scales of q, k, v: the largest powers of two with max|x| * scale <= 448. A power of two is exact in
// any dtype, so x * scale (computed in x's dtype) cannot overflow e4m3 and the fp32 descale is its exact inverse.
at::Tensor Scales(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  auto amax = [](const at::Tensor& t) {  // one read of t (no |t| or fp32 copy)
    auto [lo, hi] = at::aminmax(t);
    return at::maximum(lo.neg(), hi).to(at::kFloat);
  };
  return at::exp2(at::floor(at::log2(kE4m3Max / at::stack({amax(q), amax(k), amax(v)}).clamp_min(kTiny))));
}

// O's scale: half of v's. P is rounded before P·V while the row sum is not, so |O| may exceed max|v| by P's
// rounding (up to 1/16); e4m3 keeps 3 mantissa bits at any scale, so the headroom is free.
at::Tensor OutScale(const at::Tensor& scale_v) { return scale_v * 0.5; }

at::Tensor ToE4m3(const at::Tensor& x, const at::Tensor& scale) { return (x * scale).to(at::kFloat8_e4m3fn); }

#ifdef DITSERVE_HAVE_CUDA_KERNELS
// kernels/fp8_scale.cuh's one-pass casts, where its layout rules hold (else the torch composition). Both casts
// write an empty_like of their input, which keeps its strides, so the input's layout decides.
bool ScaleKernelFits(const at::Tensor& t) {
  return t.dim() == 4 && t.stride(3) == 1 && t.size(3) % 8 == 0 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 &&
         t.stride(2) % 8 == 0 && (reinterpret_cast<uintptr_t>(t.data_ptr()) & 15u) == 0 &&
         t.numel() / 8 < (int64_t{1} << 31);
}

kernels::Strided4d View(const at::Tensor& t) { return {t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)}; }

void CheckLaunch(cudaError_t e) {
  TORCH_CHECK(e == cudaSuccess, "ditserve FP8 attention: scaling kernel failed: ", cudaGetErrorString(e));
}
#endif

// x * scale in e4m3, in x's memory order (scale: a one-element fp32 tensor on x's device).
at::Tensor ScaledE4m3(const at::Tensor& x, const at::Tensor& scale) {
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  if (x.scalar_type() == at::kBFloat16 && ScaleKernelFits(x)) {
    at::Tensor out = at::empty_like(x, x.options().dtype(at::kFloat8_e4m3fn));
    CheckLaunch(kernels::Bf16ToE4m3Scaled(View(x), View(out), x.size(0), x.size(1), x.size(2), x.size(3),
                                          scale.data_ptr<float>(), at::cuda::getCurrentCUDAStream().stream()));
    return out;
  }
#endif
  return ToE4m3(x, scale);
}

// e4m3 x times descale (one-element fp32), in dtype.
at::Tensor Descaled(const at::Tensor& x, const at::Tensor& descale, at::ScalarType dtype) {
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  if (dtype == at::kBFloat16 && ScaleKernelFits(x)) {
    at::Tensor out = at::empty_like(x, x.options().dtype(dtype));
    CheckLaunch(kernels::E4m3ToBf16Scaled(View(x), View(out), x.size(0), x.size(1), x.size(2), x.size(3),
                                          descale.data_ptr<float>(), at::cuda::getCurrentCUDAStream().stream()));
    return out;
  }
#endif
  return x.to(dtype).mul_(descale.to(dtype));  // exact: a power of 2
}

// e4m3 round trip of x * scale, back in fp32 and unscaled.
at::Tensor RoundE4m3(const at::Tensor& x, const at::Tensor& scale) {
  return ToE4m3(x.to(at::kFloat), scale).to(at::kFloat) / scale;
}

std::pair<at::Tensor, at::Tensor> Fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool with_lse) {
  const int64_t b = q.size(0), h = q.size(1), sq = q.size(2), d = q.size(3);
  const at::Tensor scale = Scales(q, k, v);  // [3]
  const at::Tensor scale_o = OutScale(scale.narrow(0, 2, 1));
  CudnnFp8SdpaArgs a;
  a.q = ScaledE4m3(q, scale.narrow(0, 0, 1));
  a.k = ScaledE4m3(k, scale.narrow(0, 1, 1));
  a.v = ScaledE4m3(v, scale.narrow(0, 2, 1));
  const at::TensorOptions f32 = q.options().dtype(at::kFloat);
  // descale q, k, v; descale_s, scale_s; scale_o; amax outputs. Built on the device (capturable in a CUDA graph).
  const at::Tensor scalars = at::cat({scale.reciprocal(), at::full({1}, 1.0 / kE4m3Max, f32),
                                      at::full({1}, kE4m3Max, f32), scale_o, at::zeros({2}, f32)});
  a.scalars = at::constant_pad_nd(scalars.view({8, 1}), {0, 3});  // [8, 4]: 16-byte rows
  // O stored as [B, S, H, D], the layout the transformers read it back in (a view, no copy).
  a.out = at::empty({b, sq, h, d}, q.options().dtype(at::kFloat8_e4m3fn)).transpose(1, 2);
  if (with_lse) a.stats = at::empty({b, h, sq, 1}, f32);
  CudnnFp8Sdpa(a);
  const at::Tensor out = Descaled(a.out, scale_o.reciprocal(), q.scalar_type());
  return {out, with_lse ? a.stats.view({b, h, sq}) : at::Tensor()};
}

}  // namespace

std::pair<at::Tensor, at::Tensor> Fp8AttentionReference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                        const std::optional<at::Tensor>& bias, bool with_lse) {
  const at::Tensor scale = Scales(q, k, v);
  const at::Tensor qf = RoundE4m3(q, scale[0]), kf = RoundE4m3(k, scale[1]), vf = RoundE4m3(v, scale[2]);
  at::Tensor s = at::matmul(qf, kf.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  if (bias.has_value() && bias->defined()) s = s + bias->to(at::kFloat);
  const at::Tensor row_max = std::get<0>(s.max(-1, /*keepdim=*/true));
  const at::Tensor p = at::exp(s - row_max);  // in [0, 1]: rounded with the fixed scale 448
  const at::Tensor row_sum = p.sum(-1, /*keepdim=*/true);
  const at::Tensor p8 = RoundE4m3(p, at::full({}, kE4m3Max, p.options()));
  at::Tensor out = RoundE4m3(at::matmul(p8, vf) / row_sum, OutScale(scale[2])).to(q.scalar_type());
  at::Tensor lse;
  if (with_lse) lse = (row_max + at::log(row_sum)).squeeze(-1);
  return {out, lse};
}

std::pair<at::Tensor, at::Tensor> Fp8Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               bool with_lse) {
  if (q.is_cuda() && (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf) &&
      CudnnFp8SdpaAvailable(q.device())) {
    return Fused(q, k, v, with_lse);
  }
  return Fp8AttentionReference(q, k, v, std::nullopt, with_lse);
}

bool Fp8AttentionPays(int64_t sq, int64_t sk) {
  constexpr int64_t kMinScores = int64_t{8192} * 8192;
  return sq * sk >= kMinScores;
}

bool Fp8AttentionRunsOn(const at::Device& device) { return CudnnFp8SdpaAvailable(device); }

}  // namespace ditserve::runtime
