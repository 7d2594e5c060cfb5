// torch.ops.ditserve.fp8_linear; contract in fp8_linear.h.
#include "engine/runtime/fp8_linear.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#ifdef DITSERVE_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "fp8_quant.cuh"
#endif

namespace ditserve::runtime {
namespace {

constexpr double kE4m3Max = 448.0;
constexpr int64_t kKernelMaxK = 16384;  // kernels/fp8_quant.cuh: a row is held in shared memory

bool Has(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// x [..., K1] (+ x2 [..., K2]) -> the number of rows and K; checks what both paths rely on.
std::pair<int64_t, int64_t> CheckInput(const at::Tensor& x, const std::optional<at::Tensor>& x2) {
  TORCH_CHECK(x.dim() >= 2 && x.size(-1) > 0, "ditserve::fp8_linear: x must be [..., K], got ", x.sizes());
  int64_t k = x.size(-1);
  if (Has(x2)) {
    TORCH_CHECK(x2->dim() == x.dim() && x2->sizes().slice(0, x.dim() - 1) == x.sizes().slice(0, x.dim() - 1) &&
                    x2->scalar_type() == x.scalar_type() && x2->device() == x.device(),
                "ditserve::fp8_linear: x2 ", x2->sizes(), " must share x's ", x.sizes(), " leading dims, dtype and device");
    k += x2->size(-1);
  }
  return {x.numel() / x.size(-1), k};
}

void CheckWeights(int64_t k, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_scale,
                  const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == k && weight.scalar_type() == at::kFloat8_e4m3fn,
              "ditserve::fp8_linear: weight must be float8_e4m3fn [N, ", k, "], got ", weight.scalar_type(), " ",
              weight.sizes());
  const int64_t n = weight.size(0);
  TORCH_CHECK(weight_scale.dim() == 1 && weight_scale.size(0) == n && weight_scale.scalar_type() == at::kFloat,
              "ditserve::fp8_linear: weight_scale must be float32 [", n, "], got ", weight_scale.scalar_type(), " ",
              weight_scale.sizes());
  TORCH_CHECK(!Has(bias) || (bias->dim() == 1 && bias->size(0) == n),
              "ditserve::fp8_linear: bias must be [", n, "], got ", bias->sizes());
  TORCH_CHECK(weight.device() == x.device() && weight_scale.device() == x.device() &&
                  (!Has(bias) || bias->device() == x.device()),
              "ditserve::fp8_linear: x, weight, weight_scale and bias must be on one device");
}

std::vector<int64_t> OutShape(const at::Tensor& x, int64_t n) {
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n;
  return shape;
}

at::Tensor Activated(const at::Tensor& x, bool gelu) { return gelu ? at::gelu(x, "tanh") : x; }

std::pair<at::Tensor, at::Tensor> ComposedQuantize(const at::Tensor& x, bool gelu_x,
                                                   const std::optional<at::Tensor>& x2, bool gelu_x2) {
  at::Tensor y = Activated(x, gelu_x).reshape({-1, x.size(-1)});
  if (Has(x2)) y = at::cat({y, Activated(*x2, gelu_x2).reshape({-1, x2->size(-1)})}, 1);
  const at::Tensor yf = y.to(at::kFloat);
  // times fp32(1/448), as the kernel: a division by a scalar is a reciprocal multiply on CUDA but not on the CPU
  const at::Tensor scale = yf.abs().amax(-1, /*keepdim=*/true).clamp_min(1e-12) * (1.0 / kE4m3Max);
  // times the row's reciprocal scale (as the kernel: cheaper than a division per element)
  const at::Tensor q = (yf * scale.reciprocal()).clamp(-kE4m3Max, kE4m3Max).to(at::kFloat8_e4m3fn);
  return {q, scale};
}

// The fp32 composition of the layer, arguments already checked.
at::Tensor ComposedLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_scale,
                          const std::optional<at::Tensor>& bias, bool gelu_x, const std::optional<at::Tensor>& x2,
                          bool gelu_x2) {
  const auto [q, scale] = ComposedQuantize(x, gelu_x, x2, gelu_x2);
  at::Tensor y = at::matmul(q.to(at::kFloat) * scale, (weight.to(at::kFloat) * weight_scale.unsqueeze(1)).t());
  if (Has(bias)) y = y + bias->to(at::kFloat);
  return y.to(x.scalar_type()).view(OutShape(x, weight.size(0)));
}

#ifdef DITSERVE_HAVE_CUDA_KERNELS
kernels::Fp8RowPart Part(const at::Tensor& t, bool gelu) {
  // t viewed as [B, S, cols]: leading dims other than the last two must be dense over each other
  kernels::Fp8RowPart p;
  p.x = t.data_ptr();
  p.cols = t.size(-1);
  p.row_stride = t.stride(-2);
  p.batch_stride = t.dim() >= 3 ? t.stride(-3) : t.size(-2) * t.stride(-2);
  p.gelu = gelu;
  return p;
}

bool PartApplies(const at::Tensor& t) {
  if (!(t.is_cuda() && t.scalar_type() == at::kBFloat16 && t.stride(-1) == 1 && t.dim() <= 3)) return false;
  return t.size(-1) % 8 == 0 && t.stride(-2) % 8 == 0 && (t.dim() < 3 || t.stride(-3) % 8 == 0) &&
         (reinterpret_cast<uintptr_t>(t.data_ptr()) & 15u) == 0;
}

bool KernelApplies(const at::Tensor& x, const std::optional<at::Tensor>& x2) {
  return x.numel() > 0 && PartApplies(x) && (!Has(x2) || PartApplies(*x2)) &&
         x.size(-1) + (Has(x2) ? x2->size(-1) : 0) <= kKernelMaxK;
}

std::pair<at::Tensor, at::Tensor> KernelQuantize(const at::Tensor& x, bool gelu_x,
                                                 const std::optional<at::Tensor>& x2, bool gelu_x2, int64_t rows,
                                                 int64_t k) {
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor q = at::empty({rows, k}, x.options().dtype(at::kFloat8_e4m3fn));
  at::Tensor scale = at::empty({rows, 1}, x.options().dtype(at::kFloat));
  const int64_t b = x.dim() >= 3 ? x.size(-3) : 1, s = x.size(-2);
  const kernels::Fp8RowPart pa = Part(x, gelu_x);
  const kernels::Fp8RowPart pb = Has(x2) ? Part(*x2, gelu_x2) : kernels::Fp8RowPart{};
  const cudaError_t e = kernels::Fp8QuantizeRowsBf16(pa, pb, b, s, q.data_ptr(), scale.data_ptr<float>(),
                                                     at::cuda::getCurrentCUDAStream(x.device().index()));
  TORCH_CHECK(e == cudaSuccess, "ditserve::fp8_linear: quantisation kernel failed: ", cudaGetErrorString(e));
  return {q, scale};
}

bool HasFp8TensorCores(const at::Device& device) {
  const cudaDeviceProp* p = at::cuda::getDeviceProperties(device.index());
  return p->major > 8 || (p->major == 8 && p->minor >= 9);
}
#endif

}  // namespace

bool Fp8GemmsRunOn(const at::Device& device) {
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  return device.is_cuda() && HasFp8TensorCores(device);
#else
  (void)device;
  return false;
#endif
}

std::pair<at::Tensor, at::Tensor> Fp8QuantizeRowsReference(const at::Tensor& x, bool gelu_x,
                                                           const std::optional<at::Tensor>& x2, bool gelu_x2) {
  CheckInput(x, x2);
  return ComposedQuantize(x, gelu_x, x2, gelu_x2);
}

std::pair<at::Tensor, at::Tensor> Fp8QuantizeRows(const at::Tensor& x, bool gelu_x,
                                                  const std::optional<at::Tensor>& x2, bool gelu_x2) {
  const auto [rows, k] = CheckInput(x, x2);
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  if (KernelApplies(x, x2)) return KernelQuantize(x, gelu_x, x2, gelu_x2, rows, k);
#endif
  (void)rows;
  (void)k;
  return ComposedQuantize(x, gelu_x, x2, gelu_x2);
}

at::Tensor Fp8LinearReference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_scale,
                              const std::optional<at::Tensor>& bias, bool gelu_x, const std::optional<at::Tensor>& x2,
                              bool gelu_x2) {
  CheckWeights(CheckInput(x, x2).second, x, weight, weight_scale, bias);
  return ComposedLinear(x, weight, weight_scale, bias, gelu_x, x2, gelu_x2);
}

at::Tensor Fp8Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_scale,
                     const std::optional<at::Tensor>& bias, bool gelu_x, const std::optional<at::Tensor>& x2,
                     bool gelu_x2) {
  const auto [rows, k] = CheckInput(x, x2);
  CheckWeights(k, x, weight, weight_scale, bias);
#ifdef DITSERVE_HAVE_CUDA_KERNELS
  const int64_t n = weight.size(0);
  // _scaled_mm's row-wise path: K and N multiples of 16, bf16 bias and output, Ada/Hopper or newer
  if (KernelApplies(x, x2) && HasFp8TensorCores(x.device()) && k % 16 == 0 && n % 16 == 0 && weight.is_contiguous() &&
      (!Has(bias) || bias->scalar_type() == at::kBFloat16)) {
    const auto [q, scale] = KernelQuantize(x, gelu_x, x2, gelu_x2, rows, k);
    const at::Tensor ws = weight_scale.is_contiguous() ? weight_scale.view({1, n}) : weight_scale.contiguous().view({1, n});
    return at::_scaled_mm(q, weight.t(), scale, ws, bias, /*scale_result=*/std::nullopt, at::kBFloat16,
                          /*use_fast_accum=*/false)
        .view(OutShape(x, n));
  }
#endif
  return ComposedLinear(x, weight, weight_scale, bias, gelu_x, x2, gelu_x2);
}

}  // namespace ditserve::runtime

TORCH_LIBRARY_FRAGMENT(ditserve, m) {
  m.def("fp8_linear(Tensor x, Tensor weight, Tensor weight_scale, Tensor? bias=None, bool gelu_x=False, "
        "Tensor? x2=None, bool gelu_x2=False) -> Tensor");
}

TORCH_LIBRARY_IMPL(ditserve, CPU, m) { m.impl("fp8_linear", &ditserve::runtime::Fp8Linear); }
TORCH_LIBRARY_IMPL(ditserve, CUDA, m) { m.impl("fp8_linear", &ditserve::runtime::Fp8Linear); }
