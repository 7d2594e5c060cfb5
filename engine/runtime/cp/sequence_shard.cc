#include "engine/runtime/cp/sequence_shard.h"

namespace ditserve::runtime {

SequenceSplit SplitSequence(int64_t length, int parts) {
  TORCH_CHECK(parts >= 1 && length >= 0, "SplitSequence: bad arguments");
  SequenceSplit s;
  s.length = length;
  s.parts = parts;
  s.shard = (length + parts - 1) / parts;
  return s;
}

at::Tensor TakeShard(const at::Tensor& x, int64_t dim, const SequenceSplit& split, int index) {
  TORCH_CHECK(x.size(dim) == split.length, "TakeShard: dim ", dim, " has ", x.size(dim), " tokens, split expects ",
              split.length);
  const int64_t begin = split.shard * index;
  const int64_t real = std::max<int64_t>(0, std::min(split.shard, split.length - begin));
  at::Tensor part = x.narrow(dim, std::min(begin, split.length), real);
  if (real == split.shard) return part.contiguous();
  std::vector<int64_t> pad_shape(x.sizes().begin(), x.sizes().end());
  pad_shape[dim] = split.shard - real;
  return at::cat({part, at::zeros(pad_shape, x.options())}, dim);
}

at::Tensor ShardValidMask(const SequenceSplit& split, int index, const at::Device& device) {
  const int64_t begin = split.shard * index;
  return at::arange(begin, begin + split.shard, at::TensorOptions().dtype(at::kLong).device(device)) < split.length;
}

at::Tensor GatherShards(Communicator& comm, const at::Tensor& local, int64_t dim, const SequenceSplit& split) {
  TORCH_CHECK(comm.size() == split.parts, "GatherShards: ", comm.name(), " has ", comm.size(), " ranks, split has ",
              split.parts);
  at::Tensor moved = local.movedim(dim, 0);                 // [shard, ...]
  at::Tensor all = comm.AllGatherSync(moved);                // [parts, shard, ...]
  at::Tensor full = all.flatten(0, 1).narrow(0, 0, split.length);
  return full.movedim(0, dim).contiguous();
}

}  // namespace ditserve::runtime
