#include "engine/runtime/cp/cp_attention.h"

#include <vector>

#include "engine/runtime/cp/local_attention.h"

namespace ditserve::runtime {
namespace {

bool HasMask(const std::optional<at::Tensor>& m) { return m.has_value() && m->defined(); }

// [N, B, H, S, D] with heads split in u chunks -> [u, N, B, H/u, S, D] contiguous (send layout).
at::Tensor HeadsToChunks(const at::Tensor& x, int u) {
  const auto n = x.size(0), b = x.size(1), h = x.size(2), s = x.size(3), d = x.size(4);
  return x.view({n, b, u, h / u, s, d}).permute({2, 0, 1, 3, 4, 5}).contiguous();
}

}  // namespace

std::optional<at::Tensor> ContextParallelAttention::UlyssesMask(const std::optional<at::Tensor>& key_mask) {
  if (!HasMask(key_mask)) return std::nullopt;
  Communicator* ul = mesh_->ulysses();
  if (ul == nullptr) return *key_mask;
  if (!mask_in_.defined() || !mask_in_.is_same(*key_mask)) {
    // [B, S_l] from every ulysses rank -> [B, u * S_l], rank-major like the all-to-all's sequence.
    at::Tensor gathered = ul->AllGatherSync(key_mask->to(at::kByte));  // [u, B, S_l]
    mask_ulysses_ = gathered.permute({1, 0, 2}).reshape({key_mask->size(0), -1}).to(at::kBool);
    mask_in_ = *key_mask;
  }
  return mask_ulysses_;
}

at::Tensor ContextParallelAttention::RingMasks(const at::Tensor& mask) {
  if (!mask_ring_in_.defined() || !mask_ring_in_.is_same(mask)) {
    mask_ring_ = mesh_->ring()->AllGatherSync(mask.to(at::kByte)).to(at::kBool);  // [r, B, S_k]
    mask_ring_in_ = mask;
  }
  return mask_ring_;
}

at::Tensor ContextParallelAttention::RingAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   const std::optional<at::Tensor>& key_mask) {
  Communicator* ring = mesh_->ring();
  if (ring == nullptr) return local_.Attention(q, k, v, key_mask);
  const int n = ring->size(), me = ring->rank();
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  at::Tensor masks;
  if (HasMask(key_mask)) masks = RingMasks(*key_mask);

  // K and V travel together: one transfer per step.
  at::Tensor kv = at::stack({k, v}).contiguous();
  at::Tensor incoming = at::empty_like(kv);
  at::Tensor acc_out, acc_lse;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (int step = 0; step < n; ++step) {
    if (step + 1 < n) works = ring->SendRecv(kv, next, incoming, prev, step);
    const int src = (me - step + n) % n;  // whose block is in hand
    std::optional<at::Tensor> block_mask;
    if (masks.defined()) block_mask = masks.select(0, src);
    MergeAttention(acc_out, acc_lse, AttentionWithLse(q, kv.select(0, 0), kv.select(0, 1), block_mask, fp8_));
    if (step + 1 < n) {
      WaitAll(works);
      std::swap(kv, incoming);
    }
  }
  return acc_out.to(q.scalar_type());
}

at::Tensor ContextParallelAttention::Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               const std::optional<at::Tensor>& key_mask) {
  TORCH_CHECK(q.size(2) == k.size(2),
              "ditserve::attention (context parallel): query and key shards must have the same length, got ",
              q.size(2), " and ", k.size(2));
  Communicator* ul = mesh_->ulysses();
  if (ul == nullptr) return RingAttention(q, k, v, key_mask);

  const int u = ul->size();
  const int64_t b = q.size(0), h = q.size(1), s = q.size(2), d = q.size(3);
  TORCH_CHECK(h % u == 0, "ditserve::attention: ", h, " heads cannot be split over ulysses=", u);
  // q, k, v in one all-to-all: [u, 3, B, H/u, S_l, D] out, the same shape back with slot j = rank j's tokens.
  at::Tensor send = HeadsToChunks(at::stack({q, k, v}), u);
  at::Tensor recv = at::empty_like(send);
  ul->AllToAll(recv, send)->wait();
  // -> [3, B, H/u, u * S_l, D]
  at::Tensor qkv = recv.permute({1, 2, 3, 0, 4, 5}).reshape({3, b, h / u, u * s, d});
  at::Tensor out = RingAttention(qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2), UlyssesMask(key_mask));

  // Back: [B, H/u, u, S_l, D] -> [u, B, H/u, S_l, D]; slot j returns to rank j; received slot i holds
  // head chunk i of my tokens.
  at::Tensor back = out.view({b, h / u, u, s, d}).permute({2, 0, 1, 3, 4}).contiguous();
  at::Tensor mine = at::empty_like(back);
  ul->AllToAll(mine, back)->wait();
  return mine.permute({1, 0, 2, 3, 4}).reshape({b, h, s, d});
}

}  // namespace ditserve::runtime
