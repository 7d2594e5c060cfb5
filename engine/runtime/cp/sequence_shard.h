// Splitting a token sequence over the sequence ranks of a mesh. Lengths that do not divide evenly
// are padded at the end to a multiple of the rank count; the padded tokens are masked out as keys
// and dropped when the shards are gathered back.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#include "engine/runtime/cp/communicator.h"

namespace ditserve::runtime {

struct SequenceSplit {
  int64_t length = 0;  // real tokens
  int64_t shard = 0;   // tokens per rank (padded)
  int parts = 1;
  int64_t padded() const { return shard * parts; }
  bool has_padding() const { return padded() != length; }
};

SequenceSplit SplitSequence(int64_t length, int parts);

// Shard `index` of x along `dim` (padded with zeros past the real length).
at::Tensor TakeShard(const at::Tensor& x, int64_t dim, const SequenceSplit& split, int index);

// bool [shard]: true for this shard's real tokens.
at::Tensor ShardValidMask(const SequenceSplit& split, int index, const at::Device& device);

// Inverse of TakeShard over all ranks of `comm` (whose group rank is the shard index): every rank gets
// the full, unpadded tensor.
at::Tensor GatherShards(Communicator& comm, const at::Tensor& local, int64_t dim, const SequenceSplit& split);

}  // namespace ditserve::runtime
