#include "engine/runtime/cp/local_attention.h"

#include <cmath>
#include <tuple>

#include "engine/runtime/fp8_attention.h"

namespace ditserve::runtime {
namespace {

// Finite and far below any real score, yet small enough that score + bias cannot overflow to -inf.
double MaskedBias(at::ScalarType dtype) { return dtype == at::kHalf ? -3.0e4 : -1.0e30; }

// Reference path: explicit scores. Used where no fused kernel returns the LSE for these inputs.
AttentionPartial MathAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const std::optional<at::Tensor>& bias) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q.to(at::kFloat), k.to(at::kFloat).transpose(-1, -2)) * scale;
  if (bias) scores = scores + bias->to(at::kFloat);
  at::Tensor lse = at::logsumexp(scores, -1);
  at::Tensor out = at::matmul(at::exp(scores - lse.unsqueeze(-1)), v.to(at::kFloat)).to(q.scalar_type());
  return {out, lse};
}

}  // namespace

at::Tensor MaskToBias(const at::Tensor& key_mask, at::ScalarType dtype) {
  at::Tensor zeros = at::zeros({}, at::TensorOptions().dtype(dtype).device(key_mask.device()));
  at::Tensor bias = at::where(key_mask, zeros, at::full({}, MaskedBias(dtype), zeros.options()));
  return bias.view({key_mask.size(0), 1, 1, key_mask.size(1)});
}

AttentionPartial AttentionWithLse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const std::optional<at::Tensor>& key_mask, bool fp8) {
  const bool masked = key_mask.has_value() && key_mask->defined();
  const bool fused = q.is_cuda() && (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf);
  if (fp8 && !fused) {
    std::optional<at::Tensor> bias;
    if (masked) bias = MaskToBias(key_mask->to(q.device()), at::kFloat);
    auto [out, lse] = Fp8AttentionReference(q, k, v, bias, /*with_lse=*/true);
    return {out, lse};
  }
  if (fp8 && !masked && Fp8AttentionPays(q.size(2), k.size(2))) {
    try {
      auto [out, lse] = Fp8Attention(q, k, v, /*with_lse=*/true);
      return {out, lse};
    } catch (const c10::Error& e) {  // a cuDNN without a plan for this block: bf16, as the single-rank backend
      TORCH_WARN_ONCE("ditserve::attention: FP8 attention failed (", e.what_without_backtrace(), "); bf16 instead");
    }
  }
  std::optional<at::Tensor> bias;
  if (masked) bias = MaskToBias(key_mask->to(q.device()), q.scalar_type());
  if (q.is_cpu()) {
    auto [out, lse] = at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, false, bias);
    return {out, lse};
  }
  if (fused) {
    if (!bias) {
      // cuDNN's fused flash attention: the fastest Hopper path measured (647 TFLOP/s on an H200).
      auto r = at::_scaled_dot_product_cudnn_attention(q, k, v, std::nullopt, /*compute_log_sumexp=*/true,
                                                      0.0, false, false);
      return {std::get<0>(r), std::get<1>(r).view({q.size(0), q.size(1), q.size(2)})};
    }
    // Memory-efficient attention takes an additive bias and returns the LSE (padded to 32 queries). Its
    // kernel wants the bias rows 16-element aligned: pad the storage, view the real keys (as SDPA does).
    const int64_t sk = k.size(2), aligned = (sk + 15) / 16 * 16;
    at::Tensor storage = at::zeros({q.size(0), 1, 1, aligned}, bias->options());
    storage.narrow(3, 0, sk).copy_(*bias);
    at::Tensor expanded = storage.narrow(3, 0, sk).expand({q.size(0), q.size(1), q.size(2), sk});
    auto r = at::_scaled_dot_product_efficient_attention(q, k, v, expanded, /*compute_log_sumexp=*/true);
    return {std::get<0>(r), std::get<1>(r).narrow(2, 0, q.size(2))};
  }
  return MathAttention(q, k, v, bias);
}

void MergeAttention(at::Tensor& acc_out, at::Tensor& acc_lse, const AttentionPartial& part) {
  if (!acc_out.defined()) {
    acc_out = part.out.to(at::kFloat);
    acc_lse = part.lse.to(at::kFloat);
    return;
  }
  const at::Tensor lse = at::logaddexp(acc_lse, part.lse);
  acc_out = acc_out * at::exp(acc_lse - lse).unsqueeze(-1) + part.out.to(at::kFloat) * at::exp(part.lse - lse).unsqueeze(-1);
  acc_lse = lse;
}

}  // namespace ditserve::runtime
