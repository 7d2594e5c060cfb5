// How one transformer sequence made of N segments (e.g. [text tokens, image tokens] for FLUX, [video
// tokens, text tokens] for HunyuanVideo) is cut over the sequence ranks (ulysses x ring) of a group.
// Every segment is split separately, each padded at its end to a multiple of the rank count, so rank i
// holds [segment 0 shard i, segment 1 shard i, ...]: the segments stay recognisable on every rank and
// everything but attention runs unchanged on the shard. Padded tokens are hidden as attention keys
// (KeyMask) together with any per-segment validity the model has (a padded text prompt), and are dropped
// when a segment is gathered back. With no sequence communicator it is the identity.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "engine/runtime/cp/sequence_shard.h"

namespace ditserve::runtime {

class Communicator;

class SequenceLayout {
 public:
  SequenceLayout() = default;
  // `comm`: the sequence communicator (null, or size 1: this rank holds every token).
  SequenceLayout(Communicator* comm, std::vector<int64_t> segment_lengths);

  bool sharded() const { return comm_ != nullptr; }
  Communicator* comm() const { return comm_; }
  int index() const { return index_; }
  int segments() const { return static_cast<int>(splits_.size()); }
  int64_t length(int segment) const { return splits_.at(segment).length; }
  const SequenceSplit& split(int segment) const { return splits_.at(segment); }
  // Tokens this rank holds (padding included).
  int64_t local_length() const;
  bool has_padding() const;

  // This rank's shard of one segment: x holds the segment's tokens along `dim`.
  at::Tensor Shard(int segment, const at::Tensor& x, int64_t dim) const;
  // Rows of a per-token table of the whole sequence (x [total tokens, ...], segments in order; e.g. the
  // rotary cos/sin) for this rank's tokens, in its local order.
  at::Tensor ShardRows(const at::Tensor& table) const;
  // Inverse of Shard over all sequence ranks: every rank gets the segment's full, unpadded tensor.
  at::Tensor Gather(int segment, const at::Tensor& local, int64_t dim) const;
  // bool [shard]: which of this rank's tokens of `segment` are real (not padding).
  at::Tensor ValidTokens(int segment, const at::Device& device) const;
  // The attention key mask of this rank's tokens: bool [B, local_length] (true = attend), combining the
  // sharding's padding with per-segment validity (`valid[s]`: bool [B, length(s)], or undefined = every
  // token real; fewer entries than segments = the rest all real). Undefined when every key is real, so
  // models take their unmasked (faster) attention path.
  at::Tensor KeyMask(const std::vector<at::Tensor>& valid, int64_t batch, const at::Device& device) const;

 private:
  Communicator* comm_ = nullptr;
  int index_ = 0;
  std::vector<SequenceSplit> splits_;
};

}  // namespace ditserve::runtime
