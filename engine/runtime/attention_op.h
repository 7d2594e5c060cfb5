// The engine's attention operator, `torch.ops.ditserve.attention`, which the exported TorchScript
// transformers call for every attention (docs/model_format.md). The op itself only dispatches to the
// process's AttentionBackend: single-rank groups use SdpaAttentionBackend; a context-parallel group
// (Ulysses / ring) installs its own backend when it is set up. One process serves one group, so the
// backend is process-wide.
#pragma once

#include <atomic>
#include <memory>
#include <optional>

#include <ATen/ATen.h>

#include "engine/runtime/key_compaction.h"

namespace ditserve::runtime {

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  virtual const char* name() const = 0;
  // q/k/v [B, H, S, D] (S_q may differ from S_k); key_mask bool [B, S_k], true = attend.
  // Returns [B, H, S_q, D] in q's dtype.
  virtual at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const std::optional<at::Tensor>& key_mask) = 0;
};

// Plain at::scaled_dot_product_attention on this rank's full sequence (cuDNN for unmasked half/bf16 on CUDA;
// masked half/bf16 on CUDA runs cuDNN on the real keys: key_compaction.h). fp8: FP8 attention (fp8_attention.h)
// wherever the bf16 path would run cuDNN, and its reference off CUDA; a masked attention that cannot compact
// its keys (during a CUDA graph capture) stays bf16, and so does everything after an FP8 failure (a cuDNN
// without a plan for a shape: warned once, the group keeps serving).
class SdpaAttentionBackend final : public AttentionBackend {
 public:
  explicit SdpaAttentionBackend(bool fp8 = false) : fp8_(fp8) {}
  const char* name() const override { return fp8_ ? "sdpa-fp8" : "sdpa"; }
  at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const std::optional<at::Tensor>& key_mask) override;

 private:
  at::Tensor Dense(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

  const bool fp8_;
  std::atomic<bool> fp8_failed_{false};
  KeyCompaction compaction_;
  std::atomic<bool> compaction_failed_{false};
};

// Installs `backend` for this process (nullptr restores SDPA). Call while no job is running.
void SetAttentionBackend(std::shared_ptr<AttentionBackend> backend);
std::shared_ptr<AttentionBackend> CurrentAttentionBackend();

// Shape/dtype checks shared by backends; throws c10::Error with a message naming the argument.
void CheckAttentionArgs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const std::optional<at::Tensor>& key_mask);

}  // namespace ditserve::runtime
