// One c10d process group seen as a communicator along one mesh axis (cfg, ulysses, ring, ...).
// Shaped like c10d's Backend: collectives return a Work to wait on; on CUDA, Wait() only makes the
// current stream wait (no host synchronisation), on CPU (Gloo) it blocks until the data is there.
// Internal to the engine: includes c10d headers, so only context-parallel .cc files include it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

namespace ditserve::runtime {

class Communicator {
 public:
  // `ranks`: the world ranks of this group, in group-rank order (for messages only).
  Communicator(std::string name, c10::intrusive_ptr<c10d::Backend> backend, std::vector<int> ranks);

  const std::string& name() const { return name_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::vector<int>& world_ranks() const { return ranks_; }
  bool is_nccl() const { return nccl_; }

  // out = concat over ranks of `in` along a new leading dim: out.sizes() == [size, in.sizes()...].
  c10::intrusive_ptr<c10d::Work> AllGather(at::Tensor& out, at::Tensor& in);
  // in and out [size, ...]: slice i of `in` goes to rank i; slice j of `out` came from rank j.
  c10::intrusive_ptr<c10d::Work> AllToAll(at::Tensor& out, at::Tensor& in);
  c10::intrusive_ptr<c10d::Work> AllReduce(at::Tensor& t, c10d::ReduceOp op = c10d::ReduceOp::SUM);
  c10::intrusive_ptr<c10d::Work> Broadcast(at::Tensor& t, int root);
  // Sends `send` to group rank dst while receiving `recv` from src, as one operation (coalesced on
  // NCCL so a ring of simultaneous sends cannot deadlock). Returns one Work per transfer.
  std::vector<c10::intrusive_ptr<c10d::Work>> SendRecv(at::Tensor& send, int dst, at::Tensor& recv, int src,
                                                       int tag = 0);

  // Blocking helpers.
  at::Tensor AllGatherSync(const at::Tensor& in);
  void AllReduceSync(at::Tensor& t, c10d::ReduceOp op = c10d::ReduceOp::SUM);

 private:
  std::string name_;
  c10::intrusive_ptr<c10d::Backend> backend_;
  std::vector<int> ranks_;
  int rank_, size_;
  bool nccl_;
};

void WaitAll(std::vector<c10::intrusive_ptr<c10d::Work>>& works);

}  // namespace ditserve::runtime
