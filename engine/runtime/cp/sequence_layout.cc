#include "engine/runtime/cp/sequence_layout.h"

#include "engine/runtime/cp/communicator.h"

namespace ditserve::runtime {

SequenceLayout::SequenceLayout(Communicator* comm, std::vector<int64_t> segment_lengths) {
  comm_ = comm != nullptr && comm->size() > 1 ? comm : nullptr;
  index_ = comm_ != nullptr ? comm_->rank() : 0;
  const int parts = comm_ != nullptr ? comm_->size() : 1;
  for (int64_t len : segment_lengths) splits_.push_back(SplitSequence(len, parts));
}

int64_t SequenceLayout::local_length() const {
  int64_t n = 0;
  for (const SequenceSplit& s : splits_) n += s.shard;
  return n;
}

bool SequenceLayout::has_padding() const {
  for (const SequenceSplit& s : splits_) {
    if (s.has_padding()) return true;
  }
  return false;
}

at::Tensor SequenceLayout::Shard(int segment, const at::Tensor& x, int64_t dim) const {
  return comm_ != nullptr ? TakeShard(x, dim, splits_.at(segment), index_) : x;
}

at::Tensor SequenceLayout::ShardRows(const at::Tensor& table) const {
  if (comm_ == nullptr) return table;
  std::vector<at::Tensor> parts;
  int64_t offset = 0;
  for (const SequenceSplit& s : splits_) {
    parts.push_back(TakeShard(table.narrow(0, offset, s.length), 0, s, index_));
    offset += s.length;
  }
  TORCH_CHECK(offset == table.size(0), "SequenceLayout: table has ", table.size(0), " rows, the segments ", offset);
  return at::cat(parts);
}

at::Tensor SequenceLayout::Gather(int segment, const at::Tensor& local, int64_t dim) const {
  return comm_ != nullptr ? GatherShards(*comm_, local, dim, splits_.at(segment)) : local;
}

at::Tensor SequenceLayout::ValidTokens(int segment, const at::Device& device) const {
  return ShardValidMask(splits_.at(segment), index_, device);
}

at::Tensor SequenceLayout::KeyMask(const std::vector<at::Tensor>& valid, int64_t batch,
                                   const at::Device& device) const {
  bool any_masked = has_padding();
  for (const at::Tensor& v : valid) any_masked = any_masked || v.defined();
  if (!any_masked) return {};
  std::vector<at::Tensor> parts;
  for (int s = 0; s < segments(); ++s) {
    at::Tensor m = ValidTokens(s, device).unsqueeze(0).expand({batch, -1});
    if (s < static_cast<int>(valid.size()) && valid[s].defined()) {
      const at::Tensor v = valid[s].to(device, at::kBool);
      TORCH_CHECK(v.dim() == 2 && v.size(0) == batch && v.size(1) == length(s), "SequenceLayout: segment ", s,
                  " validity is ", v.sizes(), ", expected [", batch, ", ", length(s), "]");
      m = m & Shard(s, v, 1);
    }
    parts.push_back(m);
  }
  return at::cat(parts, 1);
}

}  // namespace ditserve::runtime
