// The cfg x ulysses x ring mesh of one worker group, built on c10d: a TCPStore hosted by rank 0, one
// process group per mesh axis containing this rank (NCCL on CUDA, Gloo on CPU), and a Gloo "control"
// group on the host for small agreements that must not touch the device stream (cancellation).
//
// World rank = (c * ulysses + u) * ring + r, so ring neighbours are adjacent ranks and a sequence
// group (fixed c) is a contiguous block whose group rank u * ring + r is the sequence shard index.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "ditserve/status.h"
#include "engine/runtime/cp/communicator.h"

namespace ditserve::runtime {

struct MeshOptions {
  int rank = 0;
  int cfg = 1, ulysses = 1, ring = 1;
  std::string store_host = "127.0.0.1";  // rank 0's store listens here only; Gloo binds here too
  int store_port = 0;
  at::Device device{at::kCPU};
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

// Ulysses shards attention heads: a layout whose ulysses degree does not divide the model's heads is refused
// at load (INVALID_ARGUMENT naming both). A null mesh (one rank) always passes.
class DeviceMesh;
Status CheckUlyssesDividesHeads(const DeviceMesh* mesh, int num_heads);

class DeviceMesh {
 public:
  static StatusOr<std::shared_ptr<DeviceMesh>> Create(const MeshOptions& options);

  int rank() const { return rank_; }
  int world_size() const { return cfg_ * ulysses_ * ring_; }
  int cfg_size() const { return cfg_; }
  int ulysses_size() const { return ulysses_; }
  int ring_size() const { return ring_; }
  int sequence_size() const { return ulysses_ * ring_; }
  int cfg_index() const { return rank_ / (ulysses_ * ring_); }
  int ulysses_index() const { return (rank_ / ring_) % ulysses_; }
  int ring_index() const { return rank_ % ring_; }
  int sequence_index() const { return rank_ % (ulysses_ * ring_); }
  bool leader() const { return rank_ == 0; }
  const at::Device& device() const { return device_; }

  // Null when the axis has size 1 (nothing to communicate).
  Communicator* cfg() { return cfg_comm_.get(); }
  Communicator* ulysses() { return ulysses_comm_.get(); }
  Communicator* ring() { return ring_comm_.get(); }
  Communicator* sequence() { return seq_comm_.get(); }
  Communicator* world() { return world_comm_.get(); }
  Communicator* control() { return control_comm_.get(); }  // Gloo, CPU tensors only

  // True on every rank when any rank votes true. Host-side only (control group): safe to call once per
  // step without synchronising the device.
  bool AnyRank(bool vote);

  std::string Describe() const;

 private:
  DeviceMesh() = default;
  int rank_ = 0, cfg_ = 1, ulysses_ = 1, ring_ = 1;
  at::Device device_{at::kCPU};
  std::unique_ptr<Communicator> cfg_comm_, ulysses_comm_, ring_comm_, seq_comm_, world_comm_, control_comm_;
};

}  // namespace ditserve::runtime
