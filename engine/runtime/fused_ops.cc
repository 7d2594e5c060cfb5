// torch.ops.ditserve.{rms_rope, layer_norm_modulate, linear_gelu, gated_residual}; contract in fused_ops.h.
#include "engine/runtime/fused_ops.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#ifdef DITSERVE_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "modulate.cuh"
#include "rms_rope.cuh"
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
  if (IsBf16Cuda(x) && IsBf16Cuda(gate) && IsBf16Cuda(y) && x.dim() == 3 && y.sizes() == x.sizes() &&
      gate.dim() == 2 && gate.size(0) == x.size(0) && gate.size(1) == x.size(2) && x.size(2) % 8 == 0 &&
      x.is_contiguous() && y.is_contiguous() && aligned(x) && aligned(y) && gate.device() == x.device() &&
      y.device() == x.device()) {
    const c10::cuda::CUDAGuard guard(x.device());
    // a chunk of the adaLN projection: dense (and aligned) copy when it is not
    const at::Tensor g = gate.is_contiguous() && aligned(gate) ? gate : gate.clone();
    at::Tensor out = at::empty_like(x);
    CheckLaunch(kernels::GatedResidualBf16(x.data_ptr(), g.data_ptr(), y.data_ptr(), out.data_ptr(), x.size(0),
                                           x.size(1), x.size(2), at::cuda::getCurrentCUDAStream(x.device().index())),
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

}  // namespace ditserve::runtime

TORCH_LIBRARY_FRAGMENT(ditserve, m) {
  m.def("rms_rope(Tensor x, Tensor weight, Tensor cos, Tensor sin, float eps, Tensor? x2=None, "
        "Tensor? weight2=None) -> Tensor");
  m.def("layer_norm_modulate(Tensor x, Tensor scale, Tensor shift, float eps) -> Tensor");
  m.def("linear_gelu(Tensor x, Tensor weight, Tensor bias) -> Tensor");
  m.def("gated_residual(Tensor x, Tensor gate, Tensor y) -> Tensor");
}

TORCH_LIBRARY_IMPL(ditserve, CPU, m) {
  m.impl("rms_rope", &ditserve::runtime::RmsRope);
  m.impl("layer_norm_modulate", &ditserve::runtime::LayerNormModulate);
  m.impl("linear_gelu", &ditserve::runtime::LinearGelu);
  m.impl("gated_residual", &ditserve::runtime::GatedResidual);
}

TORCH_LIBRARY_IMPL(ditserve, CUDA, m) {
  m.impl("rms_rope", &ditserve::runtime::RmsRope);
  m.impl("layer_norm_modulate", &ditserve::runtime::LayerNormModulate);
  m.impl("linear_gelu", &ditserve::runtime::LinearGelu);
  m.impl("gated_residual", &ditserve::runtime::GatedResidual);
}
