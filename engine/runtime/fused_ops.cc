// torch.ops.ditserve.{rms_rope, layer_norm_rope, rms_rope_per_head, rms_scale, layer_norm_modulate, linear_gelu,
// gated_residual, swiglu}; contract in fused_ops.h.
#include "engine/runtime/fused_ops.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#ifdef DITSERVE_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "modulate.cuh"
#include "rms_rope.cuh"
#include "swiglu.cuh"
#endif

namespace ditserve::runtime {
namespace {

// [B, S, H*D] -> RMSNorm over each head's D values, as [B, H, S, D] (the unfused module's roundings).
at::Tensor HeadRmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const int64_t d = weight.numel();
  const at::Tensor xh = x.reshape({x.size(0), x.size(1), x.size(2) / d, d}).transpose(1, 2);
  const at::Tensor var = xh.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  at::Tensor y = xh * at::rsqrt(var + eps);
  if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16) y = y.to(weight.scalar_type());
  return y * weight;
}

void CheckRmsRopeArgs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos, const at::Tensor& sin,
                      const std::optional<at::Tensor>& x2, const std::optional<at::Tensor>& weight2) {
  TORCH_CHECK(weight.dim() == 1 && weight.numel() > 0 && weight.numel() % 2 == 0,
              "ditserve::rms_rope: weight must be [D] with D even, got ", weight.sizes());
  const int64_t d = weight.numel();
  TORCH_CHECK(x.dim() == 3 && x.size(2) % d == 0, "ditserve::rms_rope: x must be [B, S, H*", d, "], got ", x.sizes());
  int64_t s = x.size(1);
  if (x2.has_value() && x2->defined()) {
    TORCH_CHECK(weight2.has_value() && weight2->defined() && weight2->sizes() == weight.sizes(),
                "ditserve::rms_rope: x2 needs weight2 of shape ", weight.sizes());
    TORCH_CHECK(x2->dim() == 3 && x2->size(0) == x.size(0) && x2->size(2) == x.size(2),
                "ditserve::rms_rope: x2 ", x2->sizes(), " incompatible with x ", x.sizes());
    s += x2->size(1);
  }
  TORCH_CHECK(cos.dim() == 2 && cos.size(0) == s && cos.size(1) == d && sin.sizes() == cos.sizes(),
              "ditserve::rms_rope: cos/sin must be [", s, ", ", d, "], got ", cos.sizes(), " / ", sin.sizes());
}

// The torch-op composition, arguments already checked.
at::Tensor ComposedRmsRope(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                           const at::Tensor& sin, double eps, const std::optional<at::Tensor>& x2,
                           const std::optional<at::Tensor>& weight2) {
  at::Tensor y = HeadRmsNorm(x, weight, eps);
  if (x2.has_value() && x2->defined()) y = at::cat({y, HeadRmsNorm(*x2, *weight2, eps)}, 2);
  const int64_t b = y.size(0), h = y.size(1), s = y.size(2), d = y.size(3);
  const at::Tensor pairs = y.reshape({b, h, s, d / 2, 2});
  const at::Tensor rotated = at::stack({-pairs.select(-1, 1), pairs.select(-1, 0)}, -1).reshape({b, h, s, d});
  const at::Tensor out = (y.to(at::kFloat) * cos.unsqueeze(0).unsqueeze(0) +
                          rotated.to(at::kFloat) * sin.unsqueeze(0).unsqueeze(0))
                             .to(y.scalar_type());
  return out.transpose(1, 2).contiguous().transpose(1, 2);  // the kernel's layout on every device
}

#ifdef DITSERVE_HAVE_CUDA_KERNELS
bool IsBf16Cuda(const at::Tensor& t) { return t.is_cuda() && t.scalar_type() == at::kBFloat16; }

void CheckLaunch(cudaError_t e, const char* op) {
  TORCH_CHECK(e == cudaSuccess, "ditserve::", op, ": kernel launch failed: ", cudaGetErrorString(e));
}

kernels::RmsRopePart Part(const at::Tensor& x, const at::Tensor& w) {
  kernels::RmsRopePart p;
  p.x = x.data_ptr();
  p.w = w.data_ptr();
  p.rows = x.size(1);
  p.batch_stride = x.stride(0);
  p.row_stride = x.stride(1);
  return p;
}

// The kernel's preconditions (rms_rope.cuh); anything else takes the composed path.
bool RmsRopeKernelApplies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                          const at::Tensor& sin, const std::optional<at::Tensor>& x2,
                          const std::optional<at::Tensor>& weight2) {
  const int64_t d = weight.numel();
  if (!(d == 64 || d == 128 || d == 256)) return false;
  auto part_ok = [](const at::Tensor& t, const at::Tensor& w) {
    return IsBf16Cuda(t) && IsBf16Cuda(w) && w.is_contiguous() && t.stride(2) == 1 && t.stride(0) % 2 == 0 &&
           t.stride(1) % 2 == 0 && (reinterpret_cast<uintptr_t>(t.data_ptr()) & 3u) == 0;
  };
  if (!part_ok(x, weight)) return false;
  if (x2.has_value() && x2->defined() && !(part_ok(*x2, *weight2) && x2->device() == x.device())) return false;
  return cos.is_cuda() && sin.is_cuda() && cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat &&
         cos.device() == x.device() && sin.device() == x.device();
}
#endif

}  // namespace

at::Tensor RmsRopeReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                            const at::Tensor& sin, double eps, const std::optional<at::Tensor>& x2,
                            const std::optional<at::Tensor>& weight2) {
  CheckRmsRopeArgs(x, weight, cos, sin, x2, weight2);
  return ComposedRmsRope(x, weight, cos, sin, eps, x2, weight2);
}

at::Tensor RmsRope(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos, const at::Tensor& sin,
                   double eps, const std::optional<at::Tensor>& x2, const std::optional<at::Tensor>& weight2) {
  CheckRmsRopeArgs(x, weight, cos, sin, x2, weight2);
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  if (RmsRopeKernelApplies(x, weight, cos, sin, x2, weight2)) {
    const c10::cuda::CUDAGuard guard(x.device());
    const bool two = x2.has_value() && x2->defined();
    const int64_t d = weight.numel(), h = x.size(2) / d, s = x.size(1) + (two ? x2->size(1) : 0);
    at::Tensor out = at::empty({x.size(0), s, h, d}, x.options().memory_format(at::MemoryFormat::Contiguous));
    const at::Tensor c = cos.contiguous(), sn = sin.contiguous();
    const kernels::RmsRopePart p1 = Part(x, weight);
    const kernels::RmsRopePart p2 = two ? Part(*x2, *weight2) : kernels::RmsRopePart{};
    CheckLaunch(kernels::RmsRopeBf16(p1, p2, c.data_ptr<float>(), sn.data_ptr<float>(), out.data_ptr(), x.size(0), h,
                                     d, float(eps), at::cuda::getCurrentCUDAStream(x.device().index())),
                "rms_rope");
    return out.transpose(1, 2);
  }
#endif
  return ComposedRmsRope(x, weight, cos, sin, eps, x2, weight2);
}

namespace {

void CheckLayerNormRopeArgs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                            int64_t rope_from) {
  TORCH_CHECK(weight.dim() == 1 && weight.numel() > 0 && weight.numel() % 2 == 0 && bias.sizes() == weight.sizes(),
              "ditserve::layer_norm_rope: weight and bias must be [D] with D even, got ", weight.sizes(), " / ",
              bias.sizes());
  const int64_t d = weight.numel();
  TORCH_CHECK(x.dim() == 3 && x.size(2) % d == 0, "ditserve::layer_norm_rope: x must be [B, S, H*", d, "], got ",
              x.sizes());
  const int64_t s = x.size(1);
  TORCH_CHECK(rope_from >= 0 && rope_from <= s, "ditserve::layer_norm_rope: rope_from ", rope_from,
              " outside [0, ", s, "]");
  const bool has_cos = cos.has_value() && cos->defined(), has_sin = sin.has_value() && sin->defined();
  TORCH_CHECK(has_cos == has_sin, "ditserve::layer_norm_rope: cos and sin go together");
  if (has_cos) {
    TORCH_CHECK(cos->dim() == 2 && cos->size(0) == s - rope_from && cos->size(1) == d && sin->sizes() == cos->sizes(),
                "ditserve::layer_norm_rope: cos/sin must be [", s - rope_from, ", ", d, "], got ", cos->sizes(), " / ",
                sin->sizes());
  }
}

}  // namespace

at::Tensor LayerNormRopeReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                  const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                                  double eps, int64_t rope_from) {
  CheckLayerNormRopeArgs(x, weight, bias, cos, sin, rope_from);
  const int64_t b = x.size(0), s = x.size(1), d = weight.numel(), h = x.size(2) / d;
  at::Tensor y = at::layer_norm(x.reshape({b, s, h, d}), {d}, weight, bias, eps);  // [B, S, H, D]
  if (cos.has_value() && cos->defined() && rope_from < s) {
    // diffusers' apply_rotary_emb(use_real=True, unbind_dim=-1) on rows [rope_from, S)
    const at::Tensor r = y.narrow(1, rope_from, s - rope_from);
    const at::Tensor pairs = r.reshape({b, s - rope_from, h, d / 2, 2});
    const at::Tensor rotated = at::stack({-pairs.select(-1, 1), pairs.select(-1, 0)}, -1).reshape(r.sizes());
    const at::Tensor c = cos->unsqueeze(0).unsqueeze(2), sn = sin->unsqueeze(0).unsqueeze(2);
    const at::Tensor out = (r.to(at::kFloat) * c + rotated.to(at::kFloat) * sn).to(y.scalar_type());
    y = rope_from > 0 ? at::cat({y.narrow(1, 0, rope_from), out}, 1) : out;
  }
  return y.contiguous().transpose(1, 2);  // stored [B, S, H, D], as the kernel's output
}

at::Tensor LayerNormRope(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                         const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin, double eps,
                         int64_t rope_from) {
  CheckLayerNormRopeArgs(x, weight, bias, cos, sin, rope_from);
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  const int64_t d = weight.numel();
  const bool rope = cos.has_value() && cos->defined();
  const bool tables_ok = !rope || (cos->is_cuda() && sin->is_cuda() && cos->scalar_type() == at::kFloat &&
                                   sin->scalar_type() == at::kFloat && cos->device() == x.device() &&
                                   sin->device() == x.device());
  if ((d == 64 || d == 128 || d == 256) && IsBf16Cuda(x) && IsBf16Cuda(weight) && IsBf16Cuda(bias) &&
      weight.is_contiguous() && bias.is_contiguous() && x.stride(2) == 1 && x.stride(0) % 2 == 0 &&
      x.stride(1) % 2 == 0 && (reinterpret_cast<uintptr_t>(x.data_ptr()) & 3u) == 0 && tables_ok) {
    const c10::cuda::CUDAGuard guard(x.device());
    const int64_t h = x.size(2) / d;
    at::Tensor out = at::empty({x.size(0), x.size(1), h, d}, x.options().memory_format(at::MemoryFormat::Contiguous));
    at::Tensor c, sn;
    if (rope) {
      c = cos->contiguous();
      sn = sin->contiguous();
    }
    CheckLaunch(kernels::LayerNormRopeBf16(Part(x, weight), bias.data_ptr(), rope ? rope_from : x.size(1),
                                           rope ? c.data_ptr<float>() : nullptr, rope ? sn.data_ptr<float>() : nullptr,
                                           out.data_ptr(), x.size(0), h, d, float(eps),
                                           at::cuda::getCurrentCUDAStream(x.device().index())),
                "layer_norm_rope");
    return out.transpose(1, 2);
  }
#endif
  return LayerNormRopeReference(x, weight, bias, cos, sin, eps, rope_from);
}

namespace {

// Mochi's HeadRMSNorm: [B, S, H*D] -> (x * rsqrt(mean(x^2) + eps) * weight) rounded once, as [B, S, H, D].
at::Tensor HeadRmsNormOneRounding(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const int64_t d = weight.numel();
  const at::Tensor xh = x.reshape({x.size(0), x.size(1), x.size(2) / d, d});
  const at::Tensor var = xh.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  return (xh * at::rsqrt(var + eps) * weight).to(x.scalar_type());
}

void CheckRmsRopePerHeadArgs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                             const at::Tensor& sin, const std::optional<at::Tensor>& x2,
                             const std::optional<at::Tensor>& weight2) {
  TORCH_CHECK(weight.dim() == 1 && weight.numel() > 0 && weight.numel() % 2 == 0,
              "ditserve::rms_rope_per_head: weight must be [D] with D even, got ", weight.sizes());
  const int64_t d = weight.numel();
  TORCH_CHECK(x.dim() == 3 && x.size(2) % d == 0, "ditserve::rms_rope_per_head: x must be [B, S, H*", d, "], got ",
              x.sizes());
  if (x2.has_value() && x2->defined()) {
    TORCH_CHECK(weight2.has_value() && weight2->defined() && weight2->sizes() == weight.sizes(),
                "ditserve::rms_rope_per_head: x2 needs weight2 of shape ", weight.sizes());
    TORCH_CHECK(x2->dim() == 3 && x2->size(0) == x.size(0) && x2->size(2) == x.size(2),
                "ditserve::rms_rope_per_head: x2 ", x2->sizes(), " incompatible with x ", x.sizes());
  }
  const std::vector<int64_t> table = {x.size(1), x.size(2) / d, d / 2};
  TORCH_CHECK(cos.sizes() == table && sin.sizes() == table, "ditserve::rms_rope_per_head: cos/sin must be [",
              table[0], ", ", table[1], ", ", table[2], "], got ", cos.sizes(), " / ", sin.sizes());
}

void CheckRmsScaleArgs(const at::Tensor& x, const at::Tensor& scale, const std::optional<at::Tensor>& residual) {
  TORCH_CHECK(x.dim() == 3 && scale.dim() == 2 && scale.size(0) == x.size(0) && scale.size(1) == x.size(2),
              "ditserve::rms_scale: x [B, S, D] and scale [B, D]; got ", x.sizes(), " and ", scale.sizes());
  TORCH_CHECK(!residual.has_value() || !residual->defined() || residual->sizes() == x.sizes(),
              "ditserve::rms_scale: residual must be ", x.sizes(), ", got ", residual->sizes());
}

}  // namespace

at::Tensor RmsRopePerHeadReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos,
                                   const at::Tensor& sin, double eps, const std::optional<at::Tensor>& x2,
                                   const std::optional<at::Tensor>& weight2) {
  CheckRmsRopePerHeadArgs(x, weight, cos, sin, x2, weight2);
  // diffusers' Mochi apply_rotary_emb on the (even, odd) pairs, in fp32
  const at::Tensor n = HeadRmsNormOneRounding(x, weight, eps);
  const at::Tensor even = n.slice(-1, 0, n.size(-1), 2).to(at::kFloat), odd = n.slice(-1, 1, n.size(-1), 2).to(at::kFloat);
  const at::Tensor c = (even * cos - odd * sin).to(n.scalar_type()), s = (even * sin + odd * cos).to(n.scalar_type());
  at::Tensor y = at::stack({c, s}, -1).flatten(-2);
  if (x2.has_value() && x2->defined()) y = at::cat({y, HeadRmsNormOneRounding(*x2, *weight2, eps)}, 1);
  return y.contiguous().transpose(1, 2);  // [B, H, S, D] stored [B, S, H, D], as the kernel's output
}

at::Tensor RmsRopePerHead(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos, const at::Tensor& sin,
                          double eps, const std::optional<at::Tensor>& x2, const std::optional<at::Tensor>& weight2) {
  CheckRmsRopePerHeadArgs(x, weight, cos, sin, x2, weight2);
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  const int64_t d = weight.numel();
  auto part_ok = [](const at::Tensor& t, const at::Tensor& w) {
    return IsBf16Cuda(t) && IsBf16Cuda(w) && w.is_contiguous() && t.stride(2) == 1 && t.stride(0) % 2 == 0 &&
           t.stride(1) % 2 == 0 && (reinterpret_cast<uintptr_t>(t.data_ptr()) & 3u) == 0;
  };
  const bool two = x2.has_value() && x2->defined();
  if ((d == 64 || d == 128 || d == 256) && part_ok(x, weight) &&
      (!two || (part_ok(*x2, *weight2) && x2->device() == x.device())) && cos.is_cuda() && sin.is_cuda() &&
      cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat && cos.device() == x.device() &&
      sin.device() == x.device()) {
    const c10::cuda::CUDAGuard guard(x.device());
    const int64_t h = x.size(2) / d, s = x.size(1) + (two ? x2->size(1) : 0);
    at::Tensor out = at::empty({x.size(0), s, h, d}, x.options().memory_format(at::MemoryFormat::Contiguous));
    const at::Tensor c = cos.contiguous(), sn = sin.contiguous();
    CheckLaunch(kernels::RmsRopePerHeadBf16(Part(x, weight), two ? Part(*x2, *weight2) : kernels::RmsRopePart{},
                                            c.data_ptr<float>(), sn.data_ptr<float>(), out.data_ptr(), x.size(0), h, d,
                                            float(eps), at::cuda::getCurrentCUDAStream(x.device().index())),
                "rms_rope_per_head");
    return out.transpose(1, 2);
  }
#endif
  return RmsRopePerHeadReference(x, weight, cos, sin, eps, x2, weight2);
}

at::Tensor RmsScaleReference(const at::Tensor& x, const at::Tensor& scale, double eps,
                             const std::optional<at::Tensor>& residual) {
  CheckRmsScaleArgs(x, scale, residual);
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor n = (xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps) * scale.unsqueeze(1))
                           .to(x.scalar_type());
  return residual.has_value() && residual->defined() ? *residual + n : n;
}

at::Tensor RmsScale(const at::Tensor& x, const at::Tensor& scale, double eps, const std::optional<at::Tensor>& residual) {
  CheckRmsScaleArgs(x, scale, residual);
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  auto aligned = [](const at::Tensor& t) { return (reinterpret_cast<uintptr_t>(t.data_ptr()) & 15u) == 0; };
  const bool res = residual.has_value() && residual->defined();
  if (IsBf16Cuda(x) && x.is_contiguous() && aligned(x) && x.size(2) % 8 == 0 && x.size(2) <= 16384 &&
      scale.is_cuda() && scale.scalar_type() == at::kFloat && scale.device() == x.device() &&
      (!res || (IsBf16Cuda(*residual) && residual->is_contiguous() && aligned(*residual) &&
                residual->device() == x.device()))) {
    const c10::cuda::CUDAGuard guard(x.device());
    const at::Tensor sc = scale.is_contiguous() && aligned(scale) ? scale : scale.clone();
    at::Tensor y = at::empty_like(x);
    CheckLaunch(kernels::RmsScaleBf16(x.data_ptr(), sc.data_ptr<float>(), res ? residual->data_ptr() : nullptr,
                                      y.data_ptr(), x.size(0), x.size(1), x.size(2), float(eps),
                                      at::cuda::getCurrentCUDAStream(x.device().index())),
                "rms_scale");
    return y;
  }
#endif
  return RmsScaleReference(x, scale, eps, residual);
}

at::Tensor LayerNormModulateReference(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift,
                                      double eps) {
  TORCH_CHECK(x.dim() == 3, "ditserve::layer_norm_modulate: x must be [B, S, D], got ", x.sizes());
  const std::vector<int64_t> bd = {x.size(0), x.size(2)};
  TORCH_CHECK(scale.sizes() == bd && shift.sizes() == bd, "ditserve::layer_norm_modulate: scale/shift must be [",
              x.size(0), ", ", x.size(2), "], got ", scale.sizes(), " / ", shift.sizes());
  return at::layer_norm(x, {x.size(2)}, {}, {}, eps) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

at::Tensor LayerNormModulate(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift, double eps) {
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  if (IsBf16Cuda(x) && IsBf16Cuda(scale) && IsBf16Cuda(shift) && x.dim() == 3 && x.is_contiguous() &&
      x.size(2) % 8 == 0 && x.size(2) <= 16384 && scale.sizes() == shift.sizes() && scale.dim() == 2 &&
      scale.size(0) == x.size(0) && scale.size(1) == x.size(2) && scale.device() == x.device() &&
      shift.device() == x.device() && (reinterpret_cast<uintptr_t>(x.data_ptr()) & 15u) == 0) {
    const c10::cuda::CUDAGuard guard(x.device());
    // chunks of the adaLN projection: make them dense (and 16-byte aligned) copies when they are not
    auto dense = [](const at::Tensor& t) {
      return t.is_contiguous() && (reinterpret_cast<uintptr_t>(t.data_ptr()) & 15u) == 0 ? t : t.clone();
    };
    const at::Tensor sc = dense(scale), sh = dense(shift);
    at::Tensor y = at::empty_like(x);
    CheckLaunch(kernels::LayerNormModulateBf16(x.data_ptr(), sc.data_ptr(), sh.data_ptr(), y.data_ptr(), x.size(0),
                                               x.size(1), x.size(2), float(eps),
                                               at::cuda::getCurrentCUDAStream(x.device().index())),
                "layer_norm_modulate");
    return y;
  }
#endif
  return LayerNormModulateReference(x, scale, shift, eps);
}

at::Tensor GatedResidualReference(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& y) {
  TORCH_CHECK(x.dim() == 3 && y.sizes() == x.sizes() && gate.dim() == 2 && gate.size(0) == x.size(0) &&
                  gate.size(1) == x.size(2),
              "ditserve::gated_residual: x, y [B, S, D] and gate [B, D]; got ", x.sizes(), ", ", y.sizes(), ", ",
              gate.sizes());
  return at::addcmul(x, gate.unsqueeze(1), y);
}

at::Tensor GatedResidual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& y) {
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  auto aligned = [](const at::Tensor& t) { return (reinterpret_cast<uintptr_t>(t.data_ptr()) & 15u) == 0; };
  // y: dense rows, any batch stride (the video rows of a joint [text, video] projection)
  const bool y_rows = y.dim() == 3 && y.stride(2) == 1 && y.stride(1) == y.size(2) && y.stride(0) % 8 == 0 &&
                      (y.size(0) == 1 || y.stride(0) >= y.size(1) * y.size(2));
  if (IsBf16Cuda(x) && IsBf16Cuda(gate) && IsBf16Cuda(y) && x.dim() == 3 && y.sizes() == x.sizes() &&
      gate.dim() == 2 && gate.size(0) == x.size(0) && gate.size(1) == x.size(2) && x.size(2) % 8 == 0 &&
      x.is_contiguous() && y_rows && aligned(x) && aligned(y) && gate.device() == x.device() &&
      y.device() == x.device()) {
    const c10::cuda::CUDAGuard guard(x.device());
    // a chunk of the adaLN projection: dense (and aligned) copy when it is not
    const at::Tensor g = gate.is_contiguous() && aligned(gate) ? gate : gate.clone();
    at::Tensor out = at::empty_like(x);
    const int64_t y_batch = y.size(0) == 1 ? x.size(1) * x.size(2) : y.stride(0);
    CheckLaunch(kernels::GatedResidualBf16(x.data_ptr(), g.data_ptr(), y.data_ptr(), y_batch, out.data_ptr(),
                                           x.size(0), x.size(1), x.size(2),
                                           at::cuda::getCurrentCUDAStream(x.device().index())),
                "gated_residual");
    return out;
  }
#endif
  return GatedResidualReference(x, gate, y);
}

at::Tensor LinearGeluReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::gelu(at::linear(x, weight, bias), "tanh");
}

at::Tensor LinearGelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  TORCH_CHECK(x.dim() >= 2 && weight.dim() == 2 && x.size(-1) == weight.size(1) && bias.dim() == 1 &&
                  bias.size(0) == weight.size(0),
              "ditserve::linear_gelu: x [..., K], weight [N, K], bias [N]; got ", x.sizes(), ", ", weight.sizes(),
              ", ", bias.sizes());
  if (x.is_cuda() && x.numel() > 0) {
    std::vector<int64_t> out_shape = x.sizes().vec();
    out_shape.back() = weight.size(0);
    return at::_addmm_activation(bias, x.reshape({-1, x.size(-1)}), weight.t(), 1, 1, /*use_gelu=*/true)
        .view(out_shape);
  }
  return LinearGeluReference(x, weight, bias);
}

at::Tensor SwiGluReference(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) % 2 == 0, "ditserve::swiglu: x must be [..., 2N], got ", x.sizes());
  const std::vector<at::Tensor> hg = x.chunk(2, -1);
  return hg[0] * at::silu(hg[1]);
}

at::Tensor SwiGlu(const at::Tensor& x) {
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  // A GEMM's output: contiguous, so its rows are [h, g] at a stride of 2N.
  if (IsBf16Cuda(x) && x.dim() >= 1 && x.size(-1) > 0 && x.size(-1) % 16 == 0 && x.is_contiguous() &&
      (reinterpret_cast<uintptr_t>(x.data_ptr()) & 15u) == 0) {
    const c10::cuda::CUDAGuard guard(x.device());
    const int64_t inner = x.size(-1) / 2;
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = inner;
    at::Tensor y = at::empty(shape, x.options());
    CheckLaunch(kernels::SwiGluBf16(x.data_ptr(), 2 * inner, y.data_ptr(), x.numel() / x.size(-1), inner,
                                    at::cuda::getCurrentCUDAStream(x.device().index())),
                "swiglu");
    return y;
  }
#endif
  return SwiGluReference(x);
}

}  // namespace ditserve::runtime

TORCH_LIBRARY_FRAGMENT(ditserve, m) {
  m.def("rms_rope(Tensor x, Tensor weight, Tensor cos, Tensor sin, float eps, Tensor? x2=None, "
        "Tensor? weight2=None) -> Tensor");
  m.def("layer_norm_rope(Tensor x, Tensor weight, Tensor bias, Tensor? cos, Tensor? sin, float eps, int rope_from) "
        "-> Tensor");
  m.def("rms_rope_per_head(Tensor x, Tensor weight, Tensor cos, Tensor sin, float eps, Tensor? x2=None, "
        "Tensor? weight2=None) -> Tensor");
  m.def("rms_scale(Tensor x, Tensor scale, float eps, Tensor? residual=None) -> Tensor");
  m.def("layer_norm_modulate(Tensor x, Tensor scale, Tensor shift, float eps) -> Tensor");
  m.def("linear_gelu(Tensor x, Tensor weight, Tensor bias) -> Tensor");
  m.def("gated_residual(Tensor x, Tensor gate, Tensor y) -> Tensor");
  m.def("swiglu(Tensor x) -> Tensor");
}

TORCH_LIBRARY_IMPL(ditserve, CPU, m) {
  m.impl("rms_rope", &ditserve::runtime::RmsRope);
  m.impl("layer_norm_rope", &ditserve::runtime::LayerNormRope);
  m.impl("rms_rope_per_head", &ditserve::runtime::RmsRopePerHead);
  m.impl("rms_scale", &ditserve::runtime::RmsScale);
  m.impl("layer_norm_modulate", &ditserve::runtime::LayerNormModulate);
  m.impl("linear_gelu", &ditserve::runtime::LinearGelu);
  m.impl("gated_residual", &ditserve::runtime::GatedResidual);
  m.impl("swiglu", &ditserve::runtime::SwiGlu);
}

TORCH_LIBRARY_IMPL(ditserve, CUDA, m) {
  m.impl("rms_rope", &ditserve::runtime::RmsRope);
  m.impl("layer_norm_rope", &ditserve::runtime::LayerNormRope);
  m.impl("rms_rope_per_head", &ditserve::runtime::RmsRopePerHead);
  m.impl("rms_scale", &ditserve::runtime::RmsScale);
  m.impl("layer_norm_modulate", &ditserve::runtime::LayerNormModulate);
  m.impl("linear_gelu", &ditserve::runtime::LinearGelu);
  m.impl("gated_residual", &ditserve::runtime::GatedResidual);
  m.impl("swiglu", &ditserve::runtime::SwiGlu);
}
