// Key compaction for masked attention on CUDA: the attention kernels that are fastest on Hopper (cuDNN's fused
// attention, FlashAttention) take no mask, and the kernel that does (memory-efficient attention with an additive
// bias) is about half as fast. When a key mask hides padding (Mochi's padded prompt), running the unmasked
// kernel on only the real keys gives the masked result: softmax over the kept keys is exactly the masked
// softmax. The real keys are found once per mask tensor (one host sync; the transformer passes the same mask to
// every block of a forward) and are a view when they form a prefix of the sequence (single rank: video tokens
// first, then the prompt's real tokens), an index_select copy otherwise.
#pragma once

#include <mutex>
#include <vector>

#include <ATen/ATen.h>

namespace ditserve::runtime {

class KeyCompaction {
 public:
  // Per batch row: the number of leading real keys when they form a prefix, else the indices of the real keys.
  struct Row {
    int64_t prefix = -1;  // >= 0: keys [0, prefix) are the real ones
    at::Tensor index;     // int64 [n] on the mask's device, when prefix < 0
  };

  // The real keys of every row of `key_mask` (bool [B, S_k]); cached for the last mask tensor seen (same tensor
  // object and version, or same object for inference tensors, which have no version: no sync).
  std::vector<Row> Rows(const at::Tensor& key_mask);

  // k or v [B, H, S_k, D] restricted to row b's real keys: [1, H, n_b, D].
  static at::Tensor Select(const at::Tensor& x, int64_t b, const Row& row);

 private:
  std::mutex mu_;
  at::Tensor mask_;  // held so its TensorImpl cannot be reused by another tensor while cached
  uint32_t version_ = 0;
  std::vector<Row> rows_;
};

}  // namespace ditserve::runtime
