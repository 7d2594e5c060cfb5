// torch.ops.ditserve.attention: schema, CPU/CUDA kernels and the pluggable backend.
#include "engine/runtime/attention_op.h"

#include <mutex>

#include <torch/library.h>

#include "engine/runtime/cp/local_attention.h"
#include "engine/runtime/fp8_attention.h"
#include "engine/runtime/key_compaction.h"

#ifdef DITSERVE_HAVE_TORCH_CUDA
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace ditserve::runtime {
namespace {

std::mutex g_backend_mu;
std::shared_ptr<AttentionBackend>& BackendSlot() {
  static auto* slot = new std::shared_ptr<AttentionBackend>(std::make_shared<SdpaAttentionBackend>());
  return *slot;
}

// cuDNN's fused attention needs a unit stride on D and 16-byte aligned pointers and strides (8 x 16 bits);
// anything else is copied.
at::Tensor CudnnReadable(const at::Tensor& t) {
  bool ok = t.stride(3) == 1 && (reinterpret_cast<uintptr_t>(t.data_ptr()) & 15u) == 0;
  for (int i = 0; i < 3 && ok; ++i) ok = t.size(i) == 1 || t.stride(i) % 8 == 0;
  return ok ? t : t.contiguous();
}

at::Tensor Cudnn(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return std::get<0>(at::_scaled_dot_product_cudnn_attention(CudnnReadable(q), CudnnReadable(k), CudnnReadable(v),
                                                             std::nullopt, /*compute_log_sumexp=*/false, 0.0, false,
                                                             false));
}

// A key-compacted attention syncs with the host once per mask, which a CUDA graph capture cannot do.
bool Capturing(const at::Tensor& q) {
#ifdef DITSERVE_HAVE_TORCH_CUDA
  if (!q.is_cuda()) return false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamIsCapturing(c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(q.get_device())).stream(), &status));
  return status != cudaStreamCaptureStatusNone;
#else
  (void)q;
  return false;
#endif
}

at::Tensor AttentionKernel(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const std::optional<at::Tensor>& key_mask) {
  CheckAttentionArgs(q, k, v, key_mask);
  return CurrentAttentionBackend()->Attention(q, k, v, key_mask);
}

// For Python benchmarks that step an export in process (scripts/bench/*): the single-rank backend in bf16 or
// FP8, as a group's fp8_attention sets it in the engine.
void SetFp8Attention(bool on) { SetAttentionBackend(std::make_shared<SdpaAttentionBackend>(on)); }

}  // namespace

void CheckAttentionArgs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const std::optional<at::Tensor>& key_mask) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "ditserve::attention: q, k, v must be [B, H, S, D]; got q ", q.sizes(), ", k ", k.sizes(), ", v ",
              v.sizes());
  TORCH_CHECK(k.sizes() == v.sizes(), "ditserve::attention: k ", k.sizes(), " and v ", v.sizes(), " differ");
  TORCH_CHECK(q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3),
              "ditserve::attention: q ", q.sizes(), " incompatible with k ", k.sizes());
  TORCH_CHECK(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type(),
              "ditserve::attention: q, k, v dtypes differ");
  if (key_mask.has_value() && key_mask->defined()) {
    const at::Tensor& m = *key_mask;
    TORCH_CHECK(m.scalar_type() == at::kBool, "ditserve::attention: key_mask must be bool, got ", m.scalar_type());
    TORCH_CHECK(m.dim() == 2 && m.size(0) == k.size(0) && m.size(1) == k.size(2),
                "ditserve::attention: key_mask must be [B, S_k] = [", k.size(0), ", ", k.size(2), "], got ",
                m.sizes());
  }
}

at::Tensor SdpaAttentionBackend::Dense(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (fp8_ && !fp8_failed_.load() && Fp8AttentionPays(q.size(2), k.size(2))) {
    try {
      return Fp8Attention(q, k, v, /*with_lse=*/false).first;
    } catch (const c10::Error& e) {
      fp8_failed_ = true;
      TORCH_WARN("ditserve::attention: FP8 attention failed (", e.what_without_backtrace(),
                 "); this group's attention runs in bf16 from now on");
    }
  }
  return Cudnn(q, k, v);
}

at::Tensor SdpaAttentionBackend::Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const std::optional<at::Tensor>& key_mask) {
  const bool masked = key_mask.has_value() && key_mask->defined();
  const bool fused = q.is_cuda() && (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf);
  if (fp8_ && !fused) {
    std::optional<at::Tensor> bias;
    if (masked) bias = MaskToBias(key_mask->to(q.device()), at::kFloat);
    return Fp8AttentionReference(q, k, v, bias, /*with_lse=*/false).first;
  }
  if (fused && !masked) {
    // cuDNN's fused attention directly: SDPA's dispatcher picks FlashAttention-2 on Hopper, which ran
    // at about half cuDNN's throughput at FLUX's shape (331 vs 647 TFLOP/s on an H200). cuDNN reads
    // strided q/k/v (the exported graph passes [B, S, H, D]-stored views and column slices of fused
    // projections) and returns its output in q's layout.
    return Dense(q, k, v);
  }
  if (fused && masked && !compaction_failed_.load() && !Capturing(q)) {
    // Padding keys (a padded prompt): cuDNN on each row's real keys instead of the (slower) masked kernel.
    try {
      const std::vector<KeyCompaction::Row> rows = compaction_.Rows(*key_mask);
      auto one = [&](int64_t b) {
        const auto& row = rows[static_cast<size_t>(b)];
        const at::Tensor qb = q.narrow(0, b, 1);
        if (row.prefix == 0 || (row.prefix < 0 && row.index.numel() == 0)) {
          return at::zeros_like(qb);  // every key masked: SDPA's convention for an all -inf row
        }
        return Dense(qb, KeyCompaction::Select(k, b, row), KeyCompaction::Select(v, b, row));
      };
      if (q.size(0) == 1) return one(0);
      // The samples' outputs into one tensor in q's layout, as the dense path returns it (at::cat would lay a
      // [B, S, H, D]-stored q's output out [B, H, S, D] and the caller's head merge would copy it again).
      at::Tensor out = at::empty_like(q);
      for (int64_t b = 0; b < q.size(0); ++b) out.narrow(0, b, 1).copy_(one(b));
      return out;
    } catch (const c10::Error& e) {
      // A cuDNN without a plan for this shape: the masked kernel from now on (slower, same result).
      compaction_failed_ = true;
      TORCH_WARN("ditserve::attention: cuDNN on the real keys failed (", e.what_without_backtrace(),
                 "); masked attention runs SDPA's masked kernel from now on");
    }
  }
  std::optional<at::Tensor> attn_mask;
  if (key_mask.has_value() && key_mask->defined()) {
    // [B, S_k] -> [B, 1, 1, S_k]: broadcast over heads and queries.
    attn_mask = key_mask->to(q.device()).view({key_mask->size(0), 1, 1, key_mask->size(1)});
  }
  return at::scaled_dot_product_attention(q, k, v, attn_mask);
}

void SetAttentionBackend(std::shared_ptr<AttentionBackend> backend) {
  std::lock_guard<std::mutex> lock(g_backend_mu);
  BackendSlot() = backend ? std::move(backend) : std::make_shared<SdpaAttentionBackend>();
}

std::shared_ptr<AttentionBackend> CurrentAttentionBackend() {
  std::lock_guard<std::mutex> lock(g_backend_mu);
  return BackendSlot();
}

}  // namespace ditserve::runtime

TORCH_LIBRARY(ditserve, m) {
  m.def("attention(Tensor q, Tensor k, Tensor v, Tensor? key_mask=None) -> Tensor");
  m.def("set_fp8_attention(bool on) -> ()", &ditserve::runtime::SetFp8Attention);
}

TORCH_LIBRARY_IMPL(ditserve, CPU, m) { m.impl("attention", &ditserve::runtime::AttentionKernel); }

TORCH_LIBRARY_IMPL(ditserve, CUDA, m) { m.impl("attention", &ditserve::runtime::AttentionKernel); }
