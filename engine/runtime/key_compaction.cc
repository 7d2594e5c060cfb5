#include "engine/runtime/key_compaction.h"

namespace ditserve::runtime {

namespace {

// Inference tensors (the engine runs requests under InferenceMode) have no version counter: _version() throws
// on them. They are cached by identity alone; nothing writes a key mask in place.
uint32_t VersionOf(const at::Tensor& t) { return t.is_inference() ? 0 : t._version(); }

}  // namespace

std::vector<KeyCompaction::Row> KeyCompaction::Rows(const at::Tensor& key_mask) {
  std::lock_guard<std::mutex> lock(mu_);
  if (mask_.defined() && mask_.is_same(key_mask) && version_ == VersionOf(key_mask)) return rows_;
  const at::Tensor host = key_mask.to(at::kCPU, at::kBool).contiguous();  // the one host sync
  std::vector<Row> rows(static_cast<size_t>(host.size(0)));
  const int64_t s = host.size(1);
  for (int64_t b = 0; b < host.size(0); ++b) {
    const bool* m = host[b].data_ptr<bool>();
    int64_t n = 0;
    while (n < s && m[n]) ++n;
    bool prefix = true;
    for (int64_t i = n; i < s && prefix; ++i) prefix = !m[i];
    if (prefix) {
      rows[b].prefix = n;
    } else {
      rows[b].index = at::nonzero(host[b]).view({-1}).to(key_mask.device());
    }
  }
  mask_ = key_mask;
  version_ = VersionOf(key_mask);
  rows_ = rows;
  return rows;
}

at::Tensor KeyCompaction::Select(const at::Tensor& x, int64_t b, const Row& row) {
  const at::Tensor xb = x.narrow(0, b, 1);
  return row.prefix >= 0 ? xb.narrow(2, 0, row.prefix) : xb.index_select(2, row.index);
}

}  // namespace ditserve::runtime
