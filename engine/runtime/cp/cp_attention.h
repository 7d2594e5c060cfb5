// The context-parallel AttentionBackend: each rank holds a shard of the sequence (all heads); the
// backend returns exactly what attention over the full sequence would give for this rank's queries.
//
//   Ulysses (u > 1): one all-to-all turns [B, H, S/P, D] shards of q, k, v into [B, H/u, u*S/P, D]
//                    (heads split, sequence gathered over the ulysses group), and one turns the output back.
//   Ring (r > 1):    K/V blocks travel around the ring group; each step attends the local queries to
//                    the block in hand while the next block is in flight, and partial outputs are merged
//                    with their log-sum-exp in float32.
// Both together give the 2-D layout. Key padding masks are gathered along the same paths, so padded
// tokens (uneven sequence splits, text masks) are never attended to. Without a ring, each rank's attention
// over the gathered sequence is the single-rank backend's (cuDNN on the real keys for a masked sequence: the
// masked kernel runs at about half its speed). fp8: each rank's attention in FP8.
#pragma once

#include <memory>

#include "engine/runtime/attention_op.h"
#include "engine/runtime/cp/mesh.h"

namespace ditserve::runtime {

class ContextParallelAttention final : public AttentionBackend {
 public:
  explicit ContextParallelAttention(std::shared_ptr<DeviceMesh> mesh, bool fp8 = false)
      : mesh_(std::move(mesh)), fp8_(fp8), local_(fp8) {}
  const char* name() const override { return fp8_ ? "context-parallel-fp8" : "context-parallel"; }
  at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const std::optional<at::Tensor>& key_mask) override;

 private:
  at::Tensor RingAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const std::optional<at::Tensor>& key_mask);
  // The mask after the Ulysses gather (and its ring blocks), cached per input mask: the same mask
  // tensor is passed to every attention of a forward pass.
  std::optional<at::Tensor> UlyssesMask(const std::optional<at::Tensor>& key_mask);
  at::Tensor RingMasks(const at::Tensor& mask);

  std::shared_ptr<DeviceMesh> mesh_;
  const bool fp8_;
  SdpaAttentionBackend local_;  // Ulysses without a ring: attention over the whole gathered sequence
  at::Tensor mask_in_, mask_ulysses_, mask_ring_in_, mask_ring_;
};

}  // namespace ditserve::runtime
